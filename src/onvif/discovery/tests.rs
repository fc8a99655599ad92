//! The probe loop against a hostile responder on loopback (the real multicast probe runs in
//! a network namespace in tests/onvif_discovery.rs).

use super::*;

/// A ProbeMatches for endpoint `n`, relating to `relates_to`.
fn reply(relates_to: &str, n: usize) -> String {
    format!(
        "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' \
         xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing' \
         xmlns:d='http://schemas.xmlsoap.org/ws/2005/04/discovery'>\
         <s:Header><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches>\
         <d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:cam-{n}</a:Address>\
         </a:EndpointReference><d:Scopes>onvif://www.onvif.org/name/cam{n}</d:Scopes>\
         <d:XAddrs>http://127.0.0.1:{n}/onvif/device_service</d:XAddrs></d:ProbeMatch>\
         </d:ProbeMatches></s:Body></s:Envelope>"
    )
}

/// The MessageID of a probe we received.
fn message_id_of(probe: &[u8]) -> String {
    let text = std::str::from_utf8(probe).unwrap();
    let doc = roxmltree::Document::parse(text).unwrap();
    doc.descendants()
        .find(|n| n.tag_name().name() == "MessageID")
        .and_then(|n| n.text())
        .unwrap()
        .to_string()
}

/// A responder on loopback that answers the first probe with `answers(message_id)`.
async fn responder(
    answers: impl FnOnce(&str) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        let mid = message_id_of(&buf[..n]);
        for a in answers(&mid) {
            socket.send_to(&a, from).await.unwrap();
        }
        // The repeat arrives too, with the same MessageID.
        let (n, _) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!(message_id_of(&buf[..n]), mid);
        n
    });
    (addr, task)
}

#[test]
fn message_ids_are_fresh_v4_uuids() {
    let (a, b) = (message_id(), message_id());
    assert_ne!(a, b);
    let hex = a.strip_prefix("urn:uuid:").unwrap();
    assert_eq!(hex.len(), 36);
    assert_eq!(&hex[14..15], "4");
    assert!(probe_message(&a).contains(&format!("<a:MessageID>{a}</a:MessageID>")));
    assert!(probe_message(&a).contains("<d:Types>dn:NetworkVideoTransmitter</d:Types>"));
}

#[tokio::test]
async fn hostile_replies_are_skipped_and_duplicates_merged() {
    let (target, task) = responder(|mid| {
        vec![
            b"\x00\x01 not xml".to_vec(),
            vec![b'<'; 60_000],
            format!("<x>{}</x>", "y".repeat(MAX_REPLY_BYTES)).into_bytes(),
            reply("urn:uuid:some-other-probe", 9).into_bytes(),
            reply(mid, 1).into_bytes(),
            reply(mid, 1).into_bytes(),
            reply(mid, 2).into_bytes(),
            reply(mid, 1).into_bytes(),
        ]
    })
    .await;
    let options = ProbeOptions {
        target,
        wait: Duration::from_millis(600),
        max_devices: MAX_DEVICES,
        ipv6: false,
    };
    let devices = probe(&options).await.unwrap();
    let names: Vec<_> = devices.iter().map(|d| d.name.clone().unwrap()).collect();
    assert_eq!(names, ["cam1", "cam2"]);
    task.await.unwrap();
}

#[tokio::test]
async fn the_device_count_is_capped() {
    let (target, task) =
        responder(|mid| (0..50).map(|n| reply(mid, n).into_bytes()).collect()).await;
    let options = ProbeOptions {
        target,
        wait: Duration::from_millis(600),
        max_devices: 5,
        ipv6: false,
    };
    let devices = probe(&options).await.unwrap();
    assert_eq!(devices.len(), 5);
    assert_eq!(devices[4].endpoint, "urn:uuid:cam-4");
    task.await.unwrap();
}

#[tokio::test]
async fn nobody_answering_is_an_empty_list() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = ProbeOptions {
        target: silent.local_addr().unwrap(),
        wait: Duration::from_millis(300),
        max_devices: MAX_DEVICES,
        ipv6: false,
    };
    assert!(probe(&options).await.unwrap().is_empty());
}
