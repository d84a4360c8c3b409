//! A node's identity inside its StatefulSet, read from the pod's host name.
//!
//! Kubernetes names the pods of a StatefulSet `<statefulset>-<ordinal>` and gives each one a
//! stable DNS name `<statefulset>-<ordinal>.<service>.<namespace>.svc.cluster.local` through the
//! headless service. The ordinal survives restarts, so it is the node's identity; the generation
//! (see [`crate::NodeId`]) tells one life of a pod from the next.

/// The ordinal of a StatefulSet pod from its host name or DNS name: the number after the last
/// `-` of the first label.
///
/// `emporium-3` → 3, `my-shop-emporium-12` → 12,
/// `emporium-3.emporium-peers.shop.svc.cluster.local` → 3; `emporium`, `emporium-`, `emporium-x`
/// and `3` → `None`. Leading zeros are refused (`emporium-03`): Kubernetes never writes them, and
/// accepting them would give two names to one ordinal.
pub fn ordinal_from_hostname(hostname: &str) -> Option<u32> {
    let (_, digits) = split_pod_name(hostname)?;
    digits.parse().ok()
}

/// The StatefulSet's name from one of its pods' host names: `emporium-3` → `emporium`,
/// `my-shop-emporium-12.peers.shop.svc.cluster.local` → `my-shop-emporium`; `None` where
/// [`ordinal_from_hostname`] gives `None`.
pub fn statefulset_name(hostname: &str) -> Option<&str> {
    let (name, digits) = split_pod_name(hostname)?;
    digits.parse::<u32>().ok()?;
    Some(name)
}

/// `("emporium", "3")` from `emporium-3[.rest]`, checking the shape but not the number's range.
fn split_pod_name(hostname: &str) -> Option<(&str, &str)> {
    let first_label = hostname.split('.').next()?;
    let (name, digits) = first_label.rsplit_once('-')?;
    let well_formed = !name.is_empty()
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    well_formed.then_some((name, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_is_the_number_after_the_last_dash_of_the_first_label() {
        assert_eq!(ordinal_from_hostname("emporium-0"), Some(0));
        assert_eq!(ordinal_from_hostname("emporium-3"), Some(3));
        assert_eq!(ordinal_from_hostname("my-shop-emporium-12"), Some(12));
        assert_eq!(
            ordinal_from_hostname("emporium-3.emporium-peers.shop.svc.cluster.local"),
            Some(3)
        );
        assert_eq!(
            ordinal_from_hostname("emporium-7.emporium-peers.shop.svc.cluster.local."),
            Some(7)
        );
    }

    #[test]
    fn names_without_a_trailing_ordinal_have_none() {
        for name in [
            "",
            "emporium",
            "emporium-",
            "-3",
            "3",
            "emporium-x",
            "emporium-3a",
            "emporium-+3",
            "emporium-03",
            "emporium-99999999999",
            "emporium.peers-3",
            ".emporium-3",
        ] {
            assert_eq!(ordinal_from_hostname(name), None, "{name:?}");
            assert_eq!(statefulset_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn statefulset_name_is_the_first_label_without_its_ordinal() {
        assert_eq!(statefulset_name("emporium-3"), Some("emporium"));
        assert_eq!(
            statefulset_name("my-shop-emporium-12"),
            Some("my-shop-emporium")
        );
        assert_eq!(
            statefulset_name("emporium-3.emporium-peers.shop.svc.cluster.local"),
            Some("emporium")
        );
    }
}
