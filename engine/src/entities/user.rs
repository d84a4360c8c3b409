//! User accounts: one actor per email, which registers it; logins read the acknowledged account
//! from the store. Password hashing runs on the blocking pool behind a gate, never inside an actor.

use crate::actor::{Behaviour, Outcome, Registry, Step};
use crate::clock::now_ms;
use crate::user::{hash_password, normalise_email, verify_password, Role, UserAccount};
use crate::{Engine, Error};

pub(crate) struct UserEntity;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum UserMsg {
    Register(UserAccount),
}

impl Behaviour for UserEntity {
    const KIND: &'static str = "user";
    type State = Option<UserAccount>;
    type Command = UserMsg;
    type Reply = Option<UserAccount>;

    fn registry(engine: &Engine) -> &Registry<Self> {
        &engine.inner().users
    }

    fn handle(
        _: &Engine,
        _: &str,
        state: &Self::State,
        cmd: UserMsg,
    ) -> Step<Self::State, Self::Reply> {
        Step::Ready(match (cmd, state) {
            (UserMsg::Register(_), Some(_)) => Err(Error::EmailTaken),
            (UserMsg::Register(account), None) => {
                Ok(Outcome::changed(Some(account.clone()), Some(account)))
            }
        })
    }
}

const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;

impl Engine {
    pub fn role_of(&self, email: &str) -> Role {
        if self
            .options()
            .admin_emails
            .iter()
            .any(|a| a.eq_ignore_ascii_case(email))
        {
            Role::Admin
        } else {
            Role::Customer
        }
    }

    /// Creates an account. The email is normalised to lower case.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<UserAccount, Error> {
        let username = username.trim();
        if username.is_empty() || username.chars().count() > 64 {
            return Err(Error::Invalid {
                field: "username",
                reason: "must be 1 to 64 characters".into(),
            });
        }
        let email = normalise_email(email).ok_or_else(|| Error::Invalid {
            field: "email",
            reason: "is not a valid email address".into(),
        })?;
        if !PASSWORD_LEN.contains(&password.chars().count()) {
            return Err(Error::Invalid {
                field: "password",
                reason: format!(
                    "must be {} to {} characters",
                    PASSWORD_LEN.start(),
                    PASSWORD_LEN.end()
                ),
            });
        }
        // Fail fast on a taken email before spending a hash on it.
        if self.account(&email).await?.is_some() {
            return Err(Error::EmailTaken);
        }
        let password = password.to_owned();
        let password_hash = self
            .inner()
            .passwords
            .run(move || hash_password(&password))
            .await?
            .map_err(Error::Unavailable)?;
        let account = UserAccount {
            email: email.clone(),
            username: username.to_owned(),
            password_hash,
            created_at_ms: now_ms(),
        };
        self.call::<UserEntity>(&email, &email, UserMsg::Register(account))
            .await?
            .ok_or(Error::EmailTaken)
    }

    /// The account of a normalised email as acknowledged, read from the store: every
    /// acknowledged registration is there, and no actor is activated for an email that has no
    /// account (a login with made-up emails leaves nothing behind).
    async fn account(&self, email: &str) -> Result<Option<UserAccount>, Error> {
        Ok(crate::actor::load::<UserEntity>(self, email).await?.0)
    }

    /// Checks credentials; the same error for an unknown email and a wrong password.
    pub async fn login(&self, email: &str, password: &str) -> Result<UserAccount, Error> {
        let Some(email) = normalise_email(email) else {
            return Err(Error::BadCredentials);
        };
        let account = self.account(&email).await?;
        let hash = account.as_ref().map(|a| a.password_hash.clone());
        let password = password.to_owned();
        // Verify against a dummy hash for unknown emails so timing does not reveal accounts.
        let ok = self
            .inner()
            .passwords
            .run(move || match hash {
                Some(hash) => verify_password(&hash, &password),
                None => {
                    let _ = verify_password(DUMMY_HASH, &password);
                    false
                }
            })
            .await?;
        match account {
            Some(account) if ok => Ok(account),
            _ => Err(Error::BadCredentials),
        }
    }
}

/// argon2id hash of a random string, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8rdbOWGnLjJMU6lUwGZiYCyTVbG30+GdF3y/pPs4tzU";
