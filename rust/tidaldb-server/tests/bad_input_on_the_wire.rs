//! Hostile and broken bytes on a node's peer and client ports: random noise, truncated and
//! oversized frames, hellos of another version, magic, cluster or port, garbage after a
//! good hello, and TLS clients without a certificate or with one from another CA. After
//! each, the process still runs, a normal client still works, its log names the refusal of
//! that very connection, and its memory stays flat.
//!
//! Frames go over plain TCP to a node started with `--insecure`, and over TLS (with a valid
//! client certificate) to a node with mutual TLS: with TLS, raw bytes die at the TLS layer,
//! which is tested on its own.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::model::TENANT;
use support::wire::{Raw, encoded_hello, frame_bytes, hello_bytes, noise};
use support::{CLUSTER_ID, Cluster, PHANTOM, Spec, cert_files, runtime, wait_until};
use tidaldb::NodeId;
use tidaldb::runtime::net::frame::{
    CLIENT_MAX_FRAME_BYTES, Dialer, HANDSHAKE_MAX_BYTES, Hello, PEER_MAX_FRAME_BYTES,
    PROTOCOL_VERSION, Welcome,
};
use tidaldb::runtime::net::{Client, ClientOptions, Security, TlsFiles};
use tidaldb_server::cert::{CertRequest, make_certs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Growth of the resident set allowed over the whole run.
const RSS_SLACK_KIB: u64 = 32 * 1024;
/// How long the node may take to close a connection it refuses.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum Port {
    Peer,
    Client,
}

impl Port {
    fn addr(self, c: &mut Cluster) -> std::net::SocketAddr {
        match self {
            Port::Peer => c.node(0).peer_addr,
            Port::Client => c.node(0).client_addr,
        }
    }

    /// How the node's log names a connection it closed on this port.
    fn logged_as(self) -> &'static str {
        match self {
            Port::Peer => "closed a replication connection",
            Port::Client => "closed a client connection",
        }
    }

    /// The hello this port welcomes.
    fn dialer(self) -> Dialer {
        match self {
            Port::Peer => Dialer::Peer(NodeId(PHANTOM)),
            Port::Client => Dialer::Client,
        }
    }

    fn max_frame(self) -> usize {
        match self {
            Port::Peer => PEER_MAX_FRAME_BYTES,
            Port::Client => CLIENT_MAX_FRAME_BYTES,
        }
    }
}

/// The node still runs and serves, and its log has the line that closed the connection
/// from `local_port`, naming `reason`.
fn assert_survived(c: &mut Cluster, port: Port, local_port: u16, reason: &str) {
    let from = format!("from=127.0.0.1:{local_port} ");
    let line = wait_until(
        Duration::from_secs(10),
        &format!("a log line closing {from}for {reason:?}"),
        || {
            c.node(0)
                .log_lines()
                .into_iter()
                .find(|l| l.contains(port.logged_as()) && l.contains(&from))
                .ok_or_else(|| "no line yet".to_string())
        },
    );
    assert!(
        line.contains(reason),
        "{port:?}: expected {reason:?} in {line}"
    );
    assert!(c.node(0).is_running(), "the node died after: {line}");
    c.client(0)
        .health(TENANT)
        .unwrap_or_else(|e| panic!("no health answer after {line}: {e}"));
}

/// Opens a connection secured as `security`, after the hello this port welcomes.
fn welcomed(c: &mut Cluster, security: &Security, port: Port) -> Raw {
    let mut raw = Raw::open(port.addr(c), security).expect("connect");
    raw.send(&hello_bytes(port.dialer())).expect("send a hello");
    match raw.read_welcome().expect("a welcome") {
        Welcome::Ok { node } => assert_eq!(node, NodeId(0)),
        Welcome::Refused(why) => panic!("a good hello was refused: {why}"),
    }
    raw
}

/// Sends `bytes` as the first thing on a new connection, closes our side, and expects the
/// node to close too and log `reason`.
fn send_and_close(c: &mut Cluster, security: &Security, port: Port, bytes: &[u8], reason: &str) {
    let mut raw = Raw::open(port.addr(c), security).expect("connect");
    let _ = raw.send(bytes); // the node may hang up before it has read everything
    raw.finish();
    assert!(raw.closed_by_node(CLOSE_WITHIN), "{port:?}: still open");
    assert_survived(c, port, raw.port, reason);
}

/// A hello the node must refuse, with `says` in both the answer and the log.
fn refused_hello(c: &mut Cluster, security: &Security, port: Port, hello: &Hello, says: &str) {
    let mut raw = Raw::open(port.addr(c), security).expect("connect");
    raw.send(&encoded_hello(hello)).expect("send a hello");
    match raw.read_welcome().expect("an answer") {
        Welcome::Refused(why) => assert!(why.contains(says), "{port:?}: {why}"),
        Welcome::Ok { .. } => panic!("{port:?}: {hello:?} was welcomed"),
    }
    assert!(raw.closed_by_node(CLOSE_WITHIN), "{port:?}: still open");
    assert_survived(c, port, raw.port, says);
}

/// Every frame-level case on both ports, over connections secured as `security`.
fn bad_frames(c: &mut Cluster, security: &Security) {
    for port in [Port::Peer, Port::Client] {
        send_and_close(
            c,
            security,
            port,
            &noise(port as u64 + 1, 64 * 1024),
            "bad hello",
        );
        let mut truncated = 100u32.to_be_bytes().to_vec();
        truncated.extend_from_slice(&noise(7, 10));
        send_and_close(c, security, port, &truncated, "bytes remaining");
        // A prefix under the handshake cap and no byte of the body: the codec has consumed
        // the prefix, so the end of the stream reads as a close before any hello.
        let almost = (HANDSHAKE_MAX_BYTES as u32 - 1).to_be_bytes();
        send_and_close(c, security, port, &almost, "closed before its hello");

        // A 4 GiB prefix is refused at once: the node does not wait for the body.
        let mut raw = Raw::open(port.addr(c), security).expect("connect");
        raw.send(&u32::MAX.to_be_bytes()).expect("send a prefix");
        assert!(
            raw.closed_by_node(CLOSE_WITHIN),
            "{port:?}: waited for 4 GiB"
        );
        assert_survived(c, port, raw.port, "frame size too big");

        let good = Hello::new(CLUSTER_ID, port.dialer());
        let version = Hello {
            version: PROTOCOL_VERSION + 1,
            ..good.clone()
        };
        refused_hello(c, security, port, &version, "protocol version");
        let magic = Hello {
            magic: *b"HTTP",
            ..good.clone()
        };
        refused_hello(c, security, port, &magic, "magic");
        let cluster = Hello {
            cluster_id: "other-cluster".into(),
            ..good.clone()
        };
        refused_hello(c, security, port, &cluster, "\"other-cluster\"");
        let (wrong, says) = match port {
            Port::Peer => (Dialer::Client, "clients connect to the client port"),
            Port::Client => (Dialer::Peer(NodeId(1)), "replicas connect to the peer port"),
        };
        let other_port = Hello {
            dialer: wrong,
            ..good
        };
        refused_hello(c, security, port, &other_port, says);

        // After a good hello: garbage, then a prefix past this port's cap.
        let mut raw = welcomed(c, security, port);
        raw.send(&frame_bytes(&noise(11, 100)))
            .expect("send garbage");
        assert!(raw.closed_by_node(CLOSE_WITHIN), "{port:?}: garbage kept");
        assert_survived(c, port, raw.port, "malformed frame");
        let mut raw = welcomed(c, security, port);
        raw.send(&u32::MAX.to_be_bytes()).expect("send a prefix");
        assert!(
            raw.closed_by_node(CLOSE_WITHIN),
            "{port:?}: waited for 4 GiB"
        );
        assert_survived(c, port, raw.port, "frame size too big");
    }
}

/// A prefix just under the cap, and no body: the node waits for the body (it is allowed),
/// without holding memory for it, and logs the cut-off frame when the sender goes.
fn under_cap_without_body(c: &mut Cluster, security: &Security, baseline_kib: u64) {
    for port in [Port::Peer, Port::Client] {
        let mut raw = welcomed(c, security, port);
        raw.send(&((port.max_frame() - 1) as u32).to_be_bytes())
            .expect("send a prefix");
        raw.send(&noise(3, 1000))
            .expect("send a little of the body");
        assert!(
            !raw.closed_by_node(Duration::from_millis(300)),
            "{port:?}: a frame under the cap was refused"
        );
        let rss = c.node(0).rss_kib();
        assert!(
            rss < baseline_kib + RSS_SLACK_KIB,
            "{port:?}: {rss} KiB while a {} byte frame is announced (baseline {baseline_kib})",
            port.max_frame() - 1
        );
        raw.finish();
        assert!(raw.closed_by_node(CLOSE_WITHIN), "{port:?}: still open");
        assert_survived(c, port, raw.port, "bytes remaining");
    }
}

/// The Rust client, told another cluster id, gets an error that names it.
fn wrong_cluster_client(c: &mut Cluster) {
    let mut options = c.options();
    options.cluster_id = "other-cluster".into();
    let err = Client::connect(&[c.addr(0)], options).expect_err("another cluster's client");
    assert!(err.to_string().contains("other-cluster"), "{err}");
    wait_until(Duration::from_secs(10), "the refusal logged", || {
        let lines = c.node(0).log_lines();
        match lines
            .iter()
            .any(|l| l.contains("refused: cluster id \"other-cluster\""))
        {
            true => Ok(()),
            false => Err("not yet".to_string()),
        }
    });
    assert!(c.node(0).is_running());
    c.client(0).health(TENANT).expect("health");
}

/// The resident set of the node after a normal client's first calls.
fn baseline_rss(c: &mut Cluster) -> u64 {
    c.client(0).health(TENANT).expect("health");
    c.node(0).rss_kib()
}

fn assert_rss_flat(c: &mut Cluster, baseline_kib: u64) {
    let rss = c.node(0).rss_kib();
    assert!(
        rss < baseline_kib + RSS_SLACK_KIB,
        "resident set grew from {baseline_kib} KiB to {rss} KiB"
    );
}

#[test]
fn an_insecure_node_survives_bad_frames_on_both_ports() {
    let mut c = Cluster::start(Spec {
        phantom_peer: true,
        ..Spec::insecure(1)
    });
    let baseline = baseline_rss(&mut c);
    bad_frames(&mut c, &Security::Insecure);
    under_cap_without_body(&mut c, &Security::Insecure, baseline);
    wrong_cluster_client(&mut c);
    assert_rss_flat(&mut c, baseline);
}

#[test]
fn a_tls_node_survives_bad_frames_and_refuses_strangers() {
    let mut c = Cluster::start(Spec {
        phantom_peer: true,
        ..Spec::tls(1)
    });
    let baseline = baseline_rss(&mut c);
    let certs = c.dir().join("certs");
    let ours = Security::from_files(&cert_files(&certs, "client")).expect("client cert");
    bad_frames(&mut c, &ours);
    under_cap_without_body(&mut c, &ours, baseline);
    wrong_cluster_client(&mut c);

    // A certificate signed by another CA, presented to a node of this CA.
    let other = c.dir().join("other-ca");
    make_certs(&CertRequest {
        out: other.clone(),
        names: vec!["intruder".into()],
        hosts: vec!["127.0.0.1".into()],
    })
    .expect("a second CA");
    let intruder = Security::from_files(&TlsFiles {
        ca: certs.join("ca.pem"),
        ..cert_files(&other, "intruder")
    })
    .expect("the intruder's files");
    for port in [Port::Peer, Port::Client] {
        let addr = port.addr(&mut c);
        // Plain bytes where TLS is expected.
        send_and_close(
            &mut c,
            &Security::Insecure,
            port,
            &noise(5, 4096),
            "TLS handshake failed",
        );
        // No client certificate at all.
        let local = no_certificate_hello(addr, &certs.join("ca.pem"), port.dialer());
        assert_survived(&mut c, port, local, "TLS handshake failed");
        // Another CA's certificate.
        let local = match Raw::open(addr, &intruder) {
            Err(_) => None,
            Ok(mut raw) => {
                let _ = raw.send(&hello_bytes(port.dialer()));
                assert!(
                    raw.read_welcome().is_err(),
                    "{port:?}: the intruder was answered"
                );
                Some(raw.port)
            }
        };
        if let Some(local) = local {
            assert_survived(&mut c, port, local, "TLS handshake failed");
        }
    }
    let mut options = ClientOptions::new(CLUSTER_ID, intruder);
    options.timeout = Duration::from_secs(5);
    assert!(Client::connect(&[c.addr(0)], options).is_err());
    assert!(
        c.node(0).log_text().contains("TLS handshake failed"),
        "no TLS refusal logged"
    );
    assert_rss_flat(&mut c, baseline);
}

/// A rustls client that trusts the cluster's CA but has no certificate of its own sends a
/// hello: it gets no welcome. Returns its local port.
fn no_certificate_hello(addr: std::net::SocketAddr, ca: &std::path::Path, dialer: Dialer) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add the CA");
    }
    #[allow(deprecated)] // ring's provider, as tidaldb itself uses
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let local = tcp.local_addr().expect("local address").port();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a name");
        // With TLS 1.3 the client may finish its side before the node checks it.
        if let Ok(mut tls) = connector.connect(name, tcp).await {
            let _ = tls.write_all(&hello_bytes(dialer)).await;
            let _ = tls.flush().await;
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(CLOSE_WITHIN, tls.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0)) | Ok(Err(_))),
                "a client without a certificate got {read:?}"
            );
        }
        local
    })
}
