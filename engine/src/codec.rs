//! Encoding of domain values for storage: a one-byte format marker, then bincode. A new layout
//! gets a new marker and a decoder that upgrades the old one (the migration chain).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// The only format so far.
const FORMAT_V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    // Sized first: one allocation instead of a reallocation at every doubling.
    let size = bincode::serialized_size(value).map_err(|e| Error::Codec(e.to_string()))?;
    let mut out = Vec::with_capacity(1 + usize::try_from(size).unwrap_or(0));
    out.push(FORMAT_V1);
    bincode::serialize_into(&mut out, value).map_err(|e| Error::Codec(e.to_string()))?;
    Ok(out)
}

/// Whether `bytes` carry a format marker newer than this build knows (written by a newer build
/// during a rolling deploy): not corrupt, just not ours to read.
pub fn is_newer_format(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|&marker| marker > FORMAT_V1)
}

/// An entity state as its actor stores it: the format its layout is written under today, and how
/// the layouts before it are read (the migration chain).
pub(crate) trait Stored: Serialize + DeserializeOwned {
    const FORMAT: u8 = FORMAT_V1;

    /// Reads `body`, written under an earlier `format`.
    fn upgrade(format: u8, _body: &[u8]) -> Result<Self, Error> {
        Err(Error::Codec(format!("unknown format marker {format}")))
    }
}

pub(crate) fn encode_stored<T: Stored>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = encode(value)?;
    if let Some(marker) = out.first_mut() {
        *marker = T::FORMAT;
    }
    Ok(out)
}

pub(crate) fn decode_stored<T: Stored>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.split_first() {
        Some((&marker, body)) if marker == T::FORMAT => {
            bincode::deserialize(body).map_err(|e| Error::Codec(e.to_string()))
        }
        Some((&marker, body)) => T::upgrade(marker, body),
        None => Err(Error::Codec("empty record".into())),
    }
}

/// Stock remembers its checkouts' holds from format 2 on, and their orders and times from 3 on.
impl Stored for crate::inventory::InventoryState {
    const FORMAT: u8 = 3;

    fn upgrade(format: u8, body: &[u8]) -> Result<Self, Error> {
        use crate::inventory::{InventoryStateV1, InventoryStateV2};
        match format {
            FORMAT_V1 => bincode::deserialize::<InventoryStateV1>(body).map(Into::into),
            2 => bincode::deserialize::<InventoryStateV2>(body).map(Into::into),
            other => return Err(Error::Codec(format!("unknown stock format marker {other}"))),
        }
        .map_err(|e| Error::Codec(e.to_string()))
    }
}
impl Stored for Option<crate::order::Order> {}
impl Stored for Option<crate::user::UserAccount> {}

/// Carts remember their recent operation ids from format 2 on.
impl Stored for std::sync::Arc<crate::cart::CartState> {
    const FORMAT: u8 = 2;

    fn upgrade(format: u8, body: &[u8]) -> Result<Self, Error> {
        match format {
            FORMAT_V1 => bincode::deserialize::<crate::cart::CartStateV1>(body)
                .map(|v1| std::sync::Arc::new(v1.into()))
                .map_err(|e| Error::Codec(e.to_string())),
            other => Err(Error::Codec(format!("unknown cart format marker {other}"))),
        }
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            bincode::deserialize(body).map_err(|e| Error::Codec(e.to_string()))
        }
        Some((other, _)) => Err(Error::Codec(format!("unknown format marker {other}"))),
        None => Err(Error::Codec("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use crate::cart::{CartLine, CartState};

    #[test]
    fn round_trip_and_unknown_marker() {
        let mut cart = CartState::default();
        cart.lines.insert(
            "A".into(),
            CartLine {
                product_id: "p".into(),
                quantity: 2,
            },
        );
        let bytes = super::encode(&cart).unwrap();
        assert_eq!(super::decode::<CartState>(&bytes).unwrap(), cart);
        let mut bad = bytes;
        bad[0] = 9;
        assert!(super::decode::<CartState>(&bad).is_err());
    }
}
