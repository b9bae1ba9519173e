use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_internal_range_is_refused_under_its_rule() {
    use Refusal::*;
    let table = [
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("::1", Loopback),
        ("10.0.0.1", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("fec0::1", Private),
        ("100.64.0.1", SharedAddressSpace),
        ("100.127.255.255", SharedAddressSpace),
        ("169.254.169.254", LinkLocal),
        ("fe80::1", LinkLocal),
        ("fc00::1", UniqueLocal),
        ("fd12:3456::1", UniqueLocal),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("ff02::1", Multicast),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("::", Unspecified),
        ("255.255.255.255", Broadcast),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("2001:db8::1", Documentation),
        ("192.0.0.8", Reserved),
        ("198.18.0.1", Reserved),
        ("240.0.0.1", Reserved),
    ];
    for (addr, rule) in table {
        assert_eq!(classify(ip(addr)), Some(rule), "{addr}");
    }
}

#[test]
fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_it() {
    assert_eq!(classify(ip("::ffff:127.0.0.1")), Some(Refusal::Loopback));
    assert_eq!(classify(ip("::ffff:169.254.169.254")), Some(Refusal::LinkLocal));
    assert_eq!(classify(ip("::10.0.0.1")), Some(Refusal::Private), "IPv4-compatible");
    assert_eq!(classify(ip("64:ff9b::10.0.0.1")), Some(Refusal::Private), "NAT64");
    assert_eq!(classify(ip("::ffff:8.8.8.8")), None);
}

#[test]
fn public_unicast_addresses_pass() {
    for addr in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "192.169.0.1", "2606:4700::1111"] {
        assert_eq!(classify(ip(addr)), None, "{addr}");
    }
}

#[test]
fn the_allow_list_lets_its_blocks_through_and_nothing_else() {
    let allow: AllowList = "10.0.0.0/8, fd00::/8,127.0.0.1".parse().unwrap();
    assert_eq!(allow.blocks().len(), 3);
    assert_eq!(check(ip("10.20.30.40"), &allow), Ok(()));
    assert_eq!(check(ip("::ffff:10.1.1.1"), &allow), Ok(()), "mapped forms match IPv4 blocks");
    assert_eq!(check(ip("fd00::5"), &allow), Ok(()));
    assert_eq!(check(ip("127.0.0.1"), &allow), Ok(()), "a bare address is a block of one");
    assert_eq!(check(ip("127.0.0.2"), &allow), Err(Refusal::Loopback));
    assert_eq!(check(ip("192.168.0.1"), &allow), Err(Refusal::Private));
    assert_eq!(check(ip("fc00::1"), &allow), Err(Refusal::UniqueLocal));
    assert_eq!(check(ip("8.8.8.8"), &AllowList::default()), Ok(()));
}

#[test]
fn cidr_prefixes_cut_inside_an_octet() {
    let c: Cidr = "172.16.0.0/12".parse().unwrap();
    assert!(c.contains(ip("172.31.255.255")));
    assert!(!c.contains(ip("172.32.0.0")));
    assert!(!c.contains(ip("::1")), "families never mix");
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("127.0.0.1")));
    assert_eq!(c.to_string(), "172.16.0.0/12");
}

#[test]
fn malformed_allow_lists_are_refused() {
    for bad in ["10.0.0.0/33", "fd00::/129", "10.0.0/8", "example.com", "10.0.0.0/x"] {
        assert!(bad.parse::<AllowList>().is_err(), "{bad}");
    }
    assert_eq!("".parse::<AllowList>().unwrap(), AllowList::default());
}

#[test]
fn every_spelling_of_loopback_is_refused_at_parse() {
    let none = AllowList::default();
    for url in [
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://0177.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[0:0:0:0:0:ffff:7f00:1]:8080/hook",
    ] {
        let err = parse(url, &none).unwrap_err();
        assert!(matches!(err, UrlError::Refused { refusal: Refusal::Loopback, .. }), "{url}: {err:?}");
    }
    for url in ["http://169.254.169.254/latest/meta-data", "https://10.1.2.3", "http://[fd00::1]/"] {
        assert!(matches!(parse(url, &none), Err(UrlError::Refused { .. })), "{url}");
    }
}

#[test]
fn hostnames_and_public_addresses_parse_and_the_allow_list_admits_internal_ones() {
    let none = AllowList::default();
    for url in ["https://ops.example.com/hook", "http://localhost:8080/", "http://8.8.8.8/x"] {
        assert!(parse(url, &none).is_ok(), "{url}");
    }
    let allow: AllowList = "127.0.0.0/8".parse().unwrap();
    assert_eq!(literal_ip(&parse("http://127.1:9/h", &allow).unwrap()), Some(ip("127.0.0.1")));
}

#[test]
fn malformed_urls_are_refused() {
    let long = format!("https://x.example/{}", "a".repeat(MAX_URL_LEN));
    for url in ["ftp://x.example", "http://", "not a url", "file:///etc/passwd", &long] {
        assert_eq!(parse(url, &AllowList::default()), Err(UrlError::Malformed), "{url}");
    }
}

#[test]
fn redaction_drops_credentials_query_and_fragment() {
    assert_eq!(
        redact("https://user:secret@ops.example.com:8443/hook?token=abc#frag"),
        "https://ops.example.com:8443/hook"
    );
    assert_eq!(redact("http://10.0.0.1/x"), "http://10.0.0.1/x");
    assert_eq!(redact("::not a url"), "<unparsable url>");
}
