//! A node's config is checked before anything starts, and each mistake gets a message that
//! names it.

use std::path::PathBuf;

use tidaldb_server::config::load;

const GOOD: &str = r#"
cluster_id = "c"
regions = ["us-east", "eu-west"]
node_id = 1
region = "us-east"
data_dir = "data"
[listen]
peer = "127.0.0.1:0"
client = "127.0.0.1:0"
[[peers]]
node_id = 2
region = "eu-west"
addr = "127.0.0.1:7002"
[[signals]]
name = "view"
kind = "item"
half_life = "1h"
windows = ["1h"]
[[tenants]]
id = 7
max_entities = 10
"#;

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn error_of(text: &str, insecure: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    load(&write(&dir, text), insecure).unwrap_err()
}

#[test]
fn a_good_config_loads_with_paths_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&write(&dir, GOOD), true).unwrap();
    assert_eq!(loaded.spec.data_dir, dir.path().join("data"));
    assert_eq!(loaded.spec.peers.len(), 1);
    assert_eq!(loaded.spec.tenants[0].max_entities, Some(10));
    assert_eq!(loaded.spec.region_names, ["us-east", "eu-west"]);
}

#[test]
fn tls_or_insecure_must_be_chosen_on_purpose() {
    assert!(error_of(GOOD, false).contains("no [tls] section"));
    let with_tls = GOOD.replace(
        "[[peers]]",
        "[tls]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"\n[[peers]]",
    );
    assert!(error_of(&with_tls, true).contains("--insecure was given"));
    assert!(
        error_of(&with_tls, false).contains("ca.pem"),
        "a missing CA file is named"
    );
}

#[test]
fn mistakes_are_named() {
    let cases = [
        (
            GOOD.replace("region = \"us-east\"\n", "region = \"mars\"\n"),
            "mars",
        ),
        (GOOD.replace("node_id = 2", "node_id = 1"), "lists itself"),
        (GOOD.replace("id = 7", "id = 0"), "tenant 0"),
        (
            GOOD.replace("half_life = \"1h\"", "half_life = \"soon\""),
            "soon",
        ),
        (GOOD.replace("kind = \"item\"", "kind = \"thing\""), "thing"),
        (GOOD.replace("cluster_id", "clusterid"), "clusterid"),
        (
            GOOD.replace("peer = \"127.0.0.1:0\"", "peer = \"nowhere\""),
            "invalid socket address",
        ),
        (
            GOOD.replace("windows = [\"1h\"]", "windows = [\"1y\"]"),
            "1y",
        ),
    ];
    for (text, needle) in cases {
        let e = error_of(&text, true);
        assert!(e.contains(needle), "{needle:?} not named in: {e}");
    }
}

#[test]
fn control_plane_voters_are_checked() {
    let with = |voters: &str| format!("{GOOD}\n[control]\nvoters = {voters}\n");
    let cases = [
        (with("[1, 2]"), "odd number"),
        (with("[]"), "odd number"),
        (with("[1, 1, 2]"), "twice"),
        (with("[1, 2, 9]"), "voter 9"),
    ];
    for (text, needle) in cases {
        let e = error_of(&text, true);
        assert!(e.contains(needle), "{needle:?} not named in: {e}");
    }
}
