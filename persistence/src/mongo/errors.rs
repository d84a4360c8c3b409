//! Driver errors mapped to [`crate::Error`], and the typed reads of stored fields (a field of the
//! wrong type is a corrupt record, never a panic).

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document};
use mongodb::error::{ErrorKind, InsertManyError, WriteFailure};

use crate::Error;

/// MongoDB's duplicate key error (11001 is its pre-2.6 spelling, still sent by some servers).
const DUPLICATE_KEY: [i32; 2] = [11000, 11001];

/// Maps anything the driver reports. Network failures, server selection timeouts, "not primary"
/// and every other server-side failure are `Unavailable` (retryable); records that do not decode
/// are `Corrupt`. Duplicate keys are mapped by the caller, which knows what was duplicated.
pub(super) fn map(e: mongodb::error::Error) -> Error {
    match e.kind.as_ref() {
        ErrorKind::BsonDeserialization(_) => Error::Corrupt {
            key: "?".to_owned(),
            reason: format!("mongodb: {e}"),
        },
        _ => unavailable(e),
    }
}

pub(super) fn unavailable(e: mongodb::error::Error) -> Error {
    let what = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => "no reachable server",
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => "network error",
        _ => "server error",
    };
    Error::Unavailable(format!("mongodb {what}: {e}"))
}

/// Whether the write failed only on unique indexes.
pub(super) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => DUPLICATE_KEY.contains(&w.code),
        ErrorKind::Command(c) => DUPLICATE_KEY.contains(&c.code),
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            write_concern_error: None,
            ..
        }) => errors.iter().all(|w| DUPLICATE_KEY.contains(&w.code)),
        _ => false,
    }
}

pub(super) fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

/// Stored as i64 (BSON has no unsigned integers); values past `i64::MAX` saturate.
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn corrupt(key: &str, reason: impl ToString) -> Error {
    Error::Corrupt {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

pub(super) fn get_bytes(doc: &Document, field: &str, key: &str) -> Result<Vec<u8>, Error> {
    match doc.get(field) {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        other => Err(corrupt(
            key,
            format!("field {field}: not binary: {other:?}"),
        )),
    }
}

pub(super) fn get_str(doc: &Document, field: &str, key: &str) -> Result<String, Error> {
    match doc.get(field) {
        Some(Bson::String(s)) => Ok(s.clone()),
        other => Err(corrupt(
            key,
            format!("field {field}: not a string: {other:?}"),
        )),
    }
}

pub(super) fn get_opt_str(doc: &Document, field: &str, key: &str) -> Result<Option<String>, Error> {
    match doc.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        other => Err(corrupt(
            key,
            format!("field {field}: not a string: {other:?}"),
        )),
    }
}

/// A non-negative integer, whether the server stored it as int32 or int64.
pub(super) fn get_u64(doc: &Document, field: &str, key: &str) -> Result<u64, Error> {
    let value = match doc.get(field) {
        Some(Bson::Int64(v)) => Some(*v),
        Some(Bson::Int32(v)) => Some(i64::from(*v)),
        _ => None,
    };
    value.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| {
        corrupt(
            key,
            format!(
                "field {field}: not a non-negative integer: {:?}",
                doc.get(field)
            ),
        )
    })
}

/// A document's `_id` as text (for error messages and keys).
pub(super) fn id_of(d: &Document) -> String {
    match d.get("_id") {
        Some(Bson::String(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}
