//! The reply parser on the specifications' examples and on hostile input.

use super::*;

/// Our probe's MessageID in these tests.
const MID: &str = "uuid:0a6dc791-2be6-4991-9af1-454778a1917a";

/// The `ProbeMatches` example of the WS-Discovery 2005/04 specification (section 5.3),
/// a printer, with the ONVIF scopes of an ONVIF Core specification device beside it.
fn spec_example(relates_to: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
    xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
    xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
    xmlns:i="http://printer.example.org/2003/imaging">
  <s:Header>
    <a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>
    <a:MessageID>uuid:e32e6863-ea5e-4ee4-997e-69539d1ff2cc</a:MessageID>
    <a:RelatesTo>{relates_to}</a:RelatesTo>
    <a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>
    <d:AppSequence InstanceId="1077004800" MessageNumber="2" />
  </s:Header>
  <s:Body>
    <d:ProbeMatches>
      <d:ProbeMatch>
        <a:EndpointReference>
          <a:Address>uuid:98190dc2-0890-4ef8-ac9a-5940995e6119</a:Address>
        </a:EndpointReference>
        <d:Types>i:PrintBasic i:PrintAdvanced</d:Types>
        <d:Scopes>
          ldap:///ou=engineering,o=examplecom,c=us
          ldap:///ou=floor1,ou=b42,ou=anytown,ou=ca,o=examplecom,c=us
          http://itdept/imaging/deployment/2004/12/9
        </d:Scopes>
        <d:XAddrs>http://prn-example/PRN42/b42-1668-a</d:XAddrs>
        <d:MetadataVersion>75965</d:MetadataVersion>
      </d:ProbeMatch>
    </d:ProbeMatches>
  </s:Body>
</s:Envelope>"#
    )
}

/// An ONVIF camera's reply, as ONVIF Core section 7.3 describes it (the shape real cameras
/// send: `dn:NetworkVideoTransmitter`, onvif:// scopes, two XAddrs).
const CAMERA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
  xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
  xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
  xmlns:dn="http://www.onvif.org/ver10/network/wsdl"
  xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
 <SOAP-ENV:Header>
  <wsa:MessageID>urn:uuid:1419d68a-1dd2-11b2-a105-000000000001</wsa:MessageID>
  <wsa:RelatesTo>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</wsa:RelatesTo>
  <wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
  <wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>
 </SOAP-ENV:Header>
 <SOAP-ENV:Body>
  <d:ProbeMatches>
   <d:ProbeMatch>
    <wsa:EndpointReference><wsa:Address>urn:uuid:2419d68a-2dd2-21b2-a205-ec4d47f0bd4c</wsa:Address></wsa:EndpointReference>
    <d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
    <d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/hardware/IPC-HDW%202431T onvif://www.onvif.org/name/Front%20door%20%C3%A9t%C3%A9 onvif://www.onvif.org/location/country/sweden</d:Scopes>
    <d:XAddrs>http://192.168.1.64:8080/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs>
    <d:MetadataVersion>10</d:MetadataVersion>
   </d:ProbeMatch>
  </d:ProbeMatches>
 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

#[test]
fn reads_the_specification_example() {
    let devices = probe_matches(spec_example(MID).as_bytes(), MID).unwrap();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(d.endpoint, "uuid:98190dc2-0890-4ef8-ac9a-5940995e6119");
    assert_eq!(d.xaddrs, ["http://prn-example/PRN42/b42-1668-a"]);
    assert_eq!(d.host.as_deref(), Some("prn-example"));
    assert_eq!(d.types, ["i:PrintBasic", "i:PrintAdvanced"]);
    assert_eq!(d.scopes.len(), 3);
    assert_eq!((d.name.as_deref(), d.hardware.as_deref()), (None, None));
}

#[test]
fn decodes_an_onvif_camera() {
    let devices = probe_matches(CAMERA.as_bytes(), MID).unwrap();
    let d = &devices[0];
    assert_eq!(d.endpoint, "urn:uuid:2419d68a-2dd2-21b2-a205-ec4d47f0bd4c");
    assert_eq!(d.name.as_deref(), Some("Front door été"));
    assert_eq!(d.hardware.as_deref(), Some("IPC-HDW 2431T"));
    assert_eq!(d.location.as_deref(), Some("country/sweden"));
    assert_eq!(d.host.as_deref(), Some("192.168.1.64:8080"));
    assert_eq!(d.xaddrs.len(), 2);
    assert_eq!(d.types, ["dn:NetworkVideoTransmitter", "tds:Device"]);
}

#[test]
fn a_reply_to_another_probe_is_refused() {
    let other = "uuid:11111111-2222-3333-4444-555555555555";
    let e = probe_matches(spec_example(other).as_bytes(), MID).unwrap_err();
    assert!(
        matches!(e, ReplyError::OtherProbe(ref r) if r == other),
        "{e}"
    );
}

#[test]
fn a_reply_without_relates_to_is_taken() {
    let text = CAMERA.replace(
        "<wsa:RelatesTo>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</wsa:RelatesTo>",
        "",
    );
    assert_eq!(probe_matches(text.as_bytes(), MID).unwrap().len(), 1);
}

#[test]
fn other_messages_are_not_probe_matches() {
    // A Hello (a camera announcing itself), our own Probe echoed back, HTML, binary, XML
    // with a DTD (entity expansion), and a ProbeMatches in a foreign namespace.
    let hello = CAMERA
        .replace("d:ProbeMatches>", "d:Hello>")
        .replace("d:ProbeMatch>", "d:HelloX>");
    let foreign = CAMERA.replace("ws/2005/04/discovery\"", "example.org/discovery\"");
    let dtd = r#"<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><s:Envelope xmlns:s="x">&lol;</s:Envelope>"#;
    let probe = crate::onvif::discovery::probe_message(MID);
    let inputs: Vec<&[u8]> = vec![
        hello.as_bytes(),
        foreign.as_bytes(),
        dtd.as_bytes(),
        probe.as_bytes(),
        b"<html><body>hello</body></html>",
        b"\xff\xfe\x00garbage",
        b"",
        b"<s:Envelope xmlns:s='x'><s:Body><unclosed>",
    ];
    for input in inputs {
        assert!(
            probe_matches(input, MID).is_err(),
            "taken: {}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn hostile_replies_are_capped() {
    // 40 matches with 40 scopes, 20 XAddrs (half of them not http) and 2000-character names.
    let long = "x".repeat(2_000);
    let scopes: String = (0..40)
        .map(|i| format!("onvif://www.onvif.org/name/{long}{i} "))
        .collect();
    let xaddrs: String = (0..20)
        .map(|i| format!("javascript:alert({i}) http://10.0.0.{i}/onvif/device_service "))
        .collect();
    let one = format!(
        "<d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:{long}</a:Address>\
         </a:EndpointReference><d:Scopes>{scopes}</d:Scopes><d:XAddrs>{xaddrs}</d:XAddrs>\
         </d:ProbeMatch>"
    );
    let text = format!(
        "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' \
         xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing' \
         xmlns:d='http://schemas.xmlsoap.org/ws/2005/04/discovery'><s:Body><d:ProbeMatches>{}\
         </d:ProbeMatches></s:Body></s:Envelope>",
        one.repeat(40)
    );
    let devices = probe_matches(text.as_bytes(), MID).unwrap();
    assert_eq!(devices.len(), MAX_MATCHES);
    for d in &devices {
        assert_eq!(d.endpoint.chars().count(), MAX_TEXT);
        assert_eq!(d.scopes.len(), MAX_SCOPES);
        assert!(d.scopes.iter().all(|s| s.chars().count() <= MAX_TEXT));
        let name = d.name.as_deref().unwrap_or("");
        assert!(
            name.len() > 400 && name.chars().count() <= MAX_TEXT,
            "{name}"
        );
        assert_eq!(d.xaddrs.len(), MAX_XADDRS);
        assert!(d.xaddrs.iter().all(|u| u.starts_with("http://10.0.0.")));
    }
}

#[test]
fn too_many_nodes_is_not_xml() {
    let text = format!(
        "<s:Envelope xmlns:s='x'><s:Body>{}</s:Body></s:Envelope>",
        "<a/>".repeat(MAX_NODES as usize)
    );
    assert!(matches!(
        probe_matches(text.as_bytes(), MID),
        Err(ReplyError::NotXml(_))
    ));
}

#[test]
fn a_match_without_endpoint_or_url_is_dropped_and_url_stands_in() {
    let no_epr = CAMERA.replace(
        "<wsa:EndpointReference><wsa:Address>urn:uuid:2419d68a-2dd2-21b2-a205-ec4d47f0bd4c</wsa:Address></wsa:EndpointReference>",
        "",
    );
    let d = probe_matches(no_epr.as_bytes(), MID).unwrap();
    assert_eq!(
        d[0].endpoint,
        "http://192.168.1.64:8080/onvif/device_service"
    );
    let nothing = no_epr.replace(
        "http://192.168.1.64:8080/onvif/device_service http://[fe80::1]/onvif/device_service",
        "ftp://x",
    );
    assert!(probe_matches(nothing.as_bytes(), MID).unwrap().is_empty());
}
