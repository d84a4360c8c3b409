//! The built-in test payment provider: Luhn-valid numbers are accepted, `4000000000000002` is
//! declined, and so is an expired card. Pure; the caller supplies the current month.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Card {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvc: String,
}

impl Card {
    /// The card charged when checkout gets no payment details.
    pub fn default_test_card() -> Self {
        Self {
            number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        }
    }

    /// Shape checks that make a request malformed (400) rather than declined (402).
    pub fn validate(&self) -> Result<(), String> {
        let digits = self.number.chars().filter(|c| *c != ' ' && *c != '-');
        if !digits.clone().all(|c| c.is_ascii_digit()) || !(12..=19).contains(&digits.count()) {
            return Err("cardNumber must be 12 to 19 digits".into());
        }
        if !(1..=12).contains(&self.exp_month) {
            return Err("expMonth must be between 1 and 12".into());
        }
        if !(2000..=2200).contains(&self.exp_year) {
            return Err("expYear must be a four-digit year".into());
        }
        if !(3..=4).contains(&self.cvc.len()) || !self.cvc.chars().all(|c| c.is_ascii_digit()) {
            return Err("cvc must be 3 or 4 digits".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Declined {
    #[error("the card number is not valid")]
    InvalidNumber,
    #[error("the card was declined")]
    Declined,
    #[error("the card has expired")]
    Expired,
}

/// Charges `amount_cents`; returns a payment reference. `(year, month)` is today's.
pub fn charge(card: &Card, amount_cents: u64, today: (u32, u32)) -> Result<String, Declined> {
    let digits: String = card.number.chars().filter(char::is_ascii_digit).collect();
    if digits == "4000000000000002" {
        return Err(Declined::Declined);
    }
    if !luhn_valid(&digits) {
        return Err(Declined::InvalidNumber);
    }
    if (card.exp_year, card.exp_month) < today {
        return Err(Declined::Expired);
    }
    let last4 = digits.get(digits.len().saturating_sub(4)..).unwrap_or("");
    // Unique per charge, as a real provider's reference is: two charges are two references.
    let charge_id = uuid::Uuid::new_v4().simple().to_string();
    Ok(format!(
        "test_{amount_cents}_{last4}_{}",
        charge_id.get(..12).unwrap_or(&charge_id)
    ))
}

pub fn luhn_valid(digits: &str) -> bool {
    if digits.len() < 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str, month: u32, year: u32) -> Card {
        Card {
            number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: "123".into(),
        }
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("4000000000000002"));
        assert!(!luhn_valid("4242424242424241"));
    }

    #[test]
    fn decisions() {
        let today = (2026, 11);
        assert!(charge(&card("4242 4242 4242 4242", 12, 2099), 100, today).is_ok());
        assert_eq!(
            charge(&card("4000000000000002", 12, 2099), 1, today),
            Err(Declined::Declined)
        );
        assert_eq!(
            charge(&card("4242424242424241", 12, 2099), 1, today),
            Err(Declined::InvalidNumber)
        );
        assert_eq!(
            charge(&card("4242424242424242", 10, 2026), 1, today),
            Err(Declined::Expired)
        );
        assert!(charge(&card("4242424242424242", 11, 2026), 1, today).is_ok());
    }

    #[test]
    fn shape_validation() {
        assert!(card("4242424242424242", 12, 2099).validate().is_ok());
        assert!(card("42424242abcd4242", 12, 2099).validate().is_err());
        assert!(card("4242424242424242", 13, 2099).validate().is_err());
        assert!(card("4242", 1, 2099).validate().is_err());
    }
}
