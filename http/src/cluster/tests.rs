use super::*;

fn config(env: &[(&str, &str)]) -> Config {
    let mut c = Config {
        store: "mongodb://127.0.0.1:27017/shop".into(),
        ..Config::default()
    };
    for (k, v) in env {
        match *k {
            "peers" => c.peers = Some((*v).into()),
            "peer_dns" => c.peer_dns = Some((*v).into()),
            "secret" => c.cluster_secret = Some((*v).into()),
            "ordinal" => c.node_ordinal = v.parse().ok(),
            "store" => c.store = (*v).into(),
            "peer_listen" => c.peer_listen = Some((*v).into()),
            _ => panic!("{k}"),
        }
    }
    c
}

const SECRET: &str = "0123456789abcdef";

#[test]
fn no_cluster_settings_means_one_node() {
    assert_eq!(
        Settings::resolve(&Config::default(), Some("emporium-2")),
        Ok(None)
    );
}

#[test]
fn the_ordinal_comes_from_the_host_name_unless_set() {
    let c = config(&[
        ("peer_dns", "emporium-peers.shop.svc.cluster.local."),
        ("secret", SECRET),
    ]);
    let s = Settings::resolve(&c, Some("emporium-3")).unwrap().unwrap();
    assert_eq!(s.ordinal, 3);
    assert_eq!(
        s.advertise,
        "emporium-3.emporium-peers.shop.svc.cluster.local:7070"
    );
    assert_eq!(s.peer_listen, "0.0.0.0:7070".parse().unwrap());
    let c = config(&[("peer_dns", "p.svc"), ("secret", SECRET), ("ordinal", "5")]);
    assert_eq!(
        Settings::resolve(&c, Some("emporium-3"))
            .unwrap()
            .unwrap()
            .ordinal,
        5
    );
}

#[test]
fn a_static_list_names_this_node() {
    let c = config(&[
        ("peers", "0=127.0.0.11:7070,1=127.0.0.12:7070"),
        ("secret", SECRET),
        ("ordinal", "1"),
    ]);
    let s = Settings::resolve(&c, None).unwrap().unwrap();
    assert_eq!(s.advertise, "127.0.0.12:7070");
    let c = config(&[
        ("peers", "0=127.0.0.11:7070"),
        ("secret", SECRET),
        ("ordinal", "1"),
    ]);
    let err = Settings::resolve(&c, None).unwrap_err();
    assert!(err.contains("no entry for this node's ordinal 1"), "{err}");
}

#[test]
fn bad_cluster_settings_stop_the_start_with_a_message() {
    for (env, host, says) in [
        (
            vec![
                ("peers", "0=127.0.0.11:7070"),
                ("secret", SECRET),
                ("ordinal", "0"),
                ("store", "sled"),
            ],
            None,
            "shared store",
        ),
        (
            vec![("peers", "0=127.0.0.11:7070"), ("ordinal", "0")],
            None,
            "CLUSTER_SECRET",
        ),
        (
            vec![
                ("peers", "0=127.0.0.11:7070"),
                ("secret", "short"),
                ("ordinal", "0"),
            ],
            None,
            "CLUSTER_SECRET",
        ),
        (
            vec![("peers", "0=127.0.0.11:7070"), ("secret", SECRET)],
            Some("web"),
            "ordinal",
        ),
        (
            vec![("peers", "0=127.0.0.11:7070"), ("secret", SECRET)],
            None,
            "NODE_ORDINAL",
        ),
        (
            vec![("peers", "0=nowhere"), ("secret", SECRET), ("ordinal", "0")],
            None,
            "peers",
        ),
        (
            vec![
                ("peers", "0=127.0.0.11:7070"),
                ("peer_dns", "x.svc"),
                ("secret", SECRET),
                ("ordinal", "0"),
            ],
            None,
            "not both",
        ),
        (vec![("secret", SECRET)], None, "find the peers"),
        (
            vec![
                ("peers", "0=127.0.0.11:7070"),
                ("secret", SECRET),
                ("ordinal", "0"),
                ("peer_listen", "127.0.0.1:8080"),
            ],
            None,
            "differ",
        ),
    ] {
        let err = Settings::resolve(&config(&env), host).unwrap_err();
        assert!(err.contains(says), "{env:?}: {err}");
    }
}
