use super::*;

const NESTED: &[u8] = b"From: Alice <alice@example.com>\r\n\
To: bob@example.org, Team: c@x;\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <m1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello searchable world\r\n\
second line\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: Carol <carol@example.net>\r\n\
Subject: inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>inner&amp;body</p>\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"a.bin\"\r\n\
\r\n\
AAEC\r\n\
--outer--\r\n";

fn slice(raw: &[u8], a: u32, b: u32) -> &str {
    std::str::from_utf8(&raw[a as usize..b as usize]).unwrap()
}

#[test]
fn nested_structure_and_offsets() {
    let m = parse(NESTED);
    assert_eq!(m.root.mime_type, "multipart");
    assert_eq!(m.root.mime_subtype, "mixed");
    let PartKind::Multipart(parts) = &m.root.kind else {
        panic!("not multipart")
    };
    assert_eq!(parts.len(), 3);
    assert_eq!(
        slice(NESTED, parts[0].offset_body, parts[0].offset_end),
        "Hello searchable world\r\nsecond line"
    );
    assert_eq!(parts[0].params, vec![("charset".into(), "utf-8".into())]);
    assert_eq!(parts[1].mime_type, "message");
    let PartKind::Message(env, inner) = &parts[1].kind else {
        panic!("not message")
    };
    assert_eq!(env.subject.as_deref(), Some("inner"));
    assert_eq!(env.from[0].name.as_deref(), Some("Carol"));
    assert_eq!(inner.mime_subtype, "html");
    assert_eq!(
        slice(NESTED, inner.offset_body, inner.offset_end),
        "<p>inner&amp;body</p>"
    );
    assert!(slice(NESTED, inner.offset_header, inner.offset_body).starts_with("From: Carol"));
    assert_eq!(parts[2].encoding.as_deref(), Some("base64"));
    assert_eq!(
        parts[2].disposition,
        Some((
            "attachment".into(),
            vec![("filename".into(), "a.bin".into())]
        ))
    );
    // Section paths: 1 = text, 2 = message, 2.1 = inner body, 3 = attachment.
    assert_eq!(m.root.find(&[1]).unwrap().mime_subtype, "plain");
    assert_eq!(m.root.find(&[2, 1]).unwrap().mime_subtype, "html");
    assert_eq!(m.root.find(&[3]).unwrap().mime_subtype, "octet-stream");
    assert!(m.root.find(&[4]).is_none());
    assert!(m.root.find(&[0]).is_none());
}

#[test]
fn envelope_is_raw() {
    let m = parse(NESTED);
    assert_eq!(
        m.envelope.subject.as_deref(),
        Some("=?utf-8?q?Gr=C3=BC=C3=9Fe?=")
    );
    assert_eq!(m.envelope.message_id.as_deref(), Some("<m1@example.com>"));
    assert_eq!(m.envelope.sender, m.envelope.from);
    assert_eq!(m.envelope.to.len(), 4); // bob, group start, c, group end
    assert_eq!(m.sent_date, Some(1795514400));
    assert!(
        m.search_headers.contains("Subject: Grüße"),
        "{}",
        m.search_headers
    );
    assert!(m.search_body.contains("Hello searchable world"));
    assert!(m.search_body.contains("inner&body"));
    assert!(m.preview.starts_with("Hello searchable world second line"));
}

#[test]
fn single_part_and_roundtrip() {
    let raw = b"Subject: hi\r\n\r\nline one\r\nline two\r\n";
    let m = parse(raw);
    assert_eq!(m.root.offset_body, 15);
    assert_eq!(m.root.offset_end as usize, raw.len());
    assert_eq!(m.root.body_lines, 2);
    assert_eq!(m.root.mime_type, "text");
    assert_eq!(m.root.find(&[1]).unwrap().offset_body, 15);
    let enc = m.encode();
    assert_eq!(ParsedMessage::decode(&enc), Some(m.clone()));
    assert_eq!(ParsedMessage::decode(&[99]), None);
    assert_eq!(ParsedMessage::decode(&[]), None);
    assert_eq!(
        ParsedMessage::decode_envelope(&enc),
        Some(m.envelope.clone())
    );
    // Damaged: a length past the end, a truncated rest, an unknown version.
    let mut bad = enc.clone();
    bad[1] = 0xff;
    assert_eq!(ParsedMessage::decode(&bad), None);
    assert_eq!(ParsedMessage::decode_envelope(&bad), None);
    assert_eq!(ParsedMessage::decode(&enc[..enc.len() - 3]), None);
    let mut unknown = enc.clone();
    unknown[0] = 9;
    assert_eq!(ParsedMessage::decode(&unknown), None);
    assert_eq!(ParsedMessage::decode_envelope(&unknown), None);
    // Older versions (2: the whole structure in one piece; 3: this layout, older
    // contents) do not decode: the store parses such messages again.
    let mut v2 = vec![2];
    v2.extend(postcard::to_allocvec(&m).unwrap());
    assert_eq!(ParsedMessage::decode(&v2), None);
    assert_eq!(ParsedMessage::decode_envelope(&v2), None);
    let mut v3 = enc.clone();
    v3[0] = 3;
    assert_eq!(ParsedMessage::decode(&v3), None);
    assert_eq!(ParsedMessage::decode_envelope(&v3), None);
    let shifted = m.root.shifted(10);
    assert_eq!(shifted.offset_body, 25);
}

#[test]
fn garbage_never_panics() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"\r\n".to_vec(),
        b"no header at all".to_vec(),
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--".to_vec(),
        b"Content-Type: message/rfc822\r\n\r\n".to_vec(),
        vec![0xff; 100],
        b"From: \"\r\nTo: <\r\n\r\n".to_vec(),
    ];
    for raw in inputs {
        let m = parse(&raw);
        assert!(m.root.offset_end as usize <= raw.len().max(1));
    }
    // Deep nesting is cut, not followed into a stack overflow.
    let mut deep = Vec::new();
    for i in 0..200 {
        deep.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    let _ = parse(&deep);
}

#[test]
fn crlf_normalisation() {
    assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    assert_eq!(to_crlf(b"\n\n"), b"\r\n\r\n");
    assert_eq!(to_crlf(b"no end"), b"no end");
    assert_eq!(to_crlf(b"cr\ronly"), b"cr\ronly");
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check_bounds(p: &Part, len: usize) {
    assert!(
        p.offset_header <= p.offset_body && p.offset_body <= p.offset_end,
        "{p:?}"
    );
    assert!(p.offset_end as usize <= len, "{} > {len}", p.offset_end);
    match &p.kind {
        PartKind::Leaf => {}
        PartKind::Multipart(parts) => parts.iter().for_each(|c| check_bounds(c, len)),
        PartKind::Message(_, inner) => check_bounds(inner, len),
    }
}

/// Mutated messages (bytes flipped, cut, duplicated, structural tokens inserted) never
/// panic the parser, and every offset it returns lies inside the message.
#[test]
fn mutated_messages_never_panic() {
    const TOKENS: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"--outer",
        b"--outer--",
        b"Content-Type: multipart/mixed; boundary=x\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"=?utf-8?b?",
        b"?=",
        b"\"",
        b"<",
        b">",
        b":",
        b";",
        b"Content-Transfer-Encoding: base64\r\n",
        b"\r\n\r\n",
        b"\x00",
        b"\xff\xfe",
    ];
    let mut rng = Rng(0x5eed_1e77_e7b0_c5ed);
    for _ in 0..3000 {
        let mut m = NESTED.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(m.len() + 1);
            match rng.below(4) {
                0 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                1 => m.truncate(at),
                2 => {
                    let t = TOKENS[rng.below(TOKENS.len())];
                    m.splice(at..at, t.iter().copied());
                }
                _ => {
                    let end = (at + rng.below(200)).min(m.len());
                    let chunk = m[at..end].to_vec();
                    m.splice(at..at, chunk);
                }
            }
        }
        let p = parse(&m);
        check_bounds(&p.root, m.len());
        let _ = ParsedMessage::decode(&p.encode()).expect("roundtrip");
    }
}

#[test]
fn random_address_lists_never_panic() {
    let alphabet = b"ab@.<>\",:;()\\ =?q\r\n\xc3\xa9";
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let _ = parse_address_list(&String::from_utf8_lossy(&bytes));
    }
}

/// Found by fuzzing delivery (crates/smtp/fuzz, target `delivery`): mail-parser lists
/// ancestors among a multipart's children here (part 2's children are 0, 1 and 2), and
/// following them multiplied the tree exponentially: gigabytes and seconds for 676 octets
/// any SMTP client could send. Each part is converted once now.
#[test]
fn cyclic_multipart_children_are_followed_once() {
    let raw = to_crlf(b"From: \x22A\x22 <a@example.org>, =?\x00\x00\x00\x00\x00\x00\x01\x00uuf-8?q?B=C3=A9?= <b\x0a\
Content-Type: multipart/mixed; boundary=\x22b1\x22\x0d\x0a\x0d\x0apre\x0a\x0d--b1\x0d\x0a\
Co@xb0>\x0d\x0aTo: undisclosed:;\x0d\x00\x00\x00\x01\x00uuf-8?q?B=C3=A9?= <b\x0aContent-\
Type: multipart/mixed; boundary=\x22b1\x22\x0d\x0a\x0d\x0apre\x0a\x0d--b1\x0d\x0aCo@xb0>\
\x0d\x0aTo: undisclosed:;\x0d\x0aContent-Type: message/rfc822\x0d\x0a\x0d\x0aSubject: in\
ner\x0d\x0aCo\x0d\x0acaf=C3=A9\x0d\x0a--b1\x8d\x0aContent-Type: message/rfc822\x0d\x0a\x0d\
\x0antable\x0d\x0a\x0d\x0acaf=C3=AC3=A9\x0d\x0a--b1\x0dlosed:;\x0d\x0aContent-Type: mess\
age/rfc822\x0d\x0a\x0d\x0aSu`ject: inner\x0d\x0aCo\x0d\x0acaf=C3=A9\x0d\x0a--b1\x0d\x0aC\
onlosed:;\x0d\x0aContent-Type: message/r\x00\x00\x00\x00\x00\x00\x00\x00fc822\x0d\x0a\x0d\
\x0aSubject: inner\x0d\x0aCo\x0d\x0acaf=C3=A9\x0d\x0a--b1\x0d\x0aContent-Type: message/r\
fc822\x0d\x0a\x0d\x0aSubject:\x0d\x0aSu\x0d\x0acaf=C3=AC3= rienn\x0d\x0aCo.bin\x0d\x0a\x0d\
\x0aAAienn\x0d\x0aCo.bin\x0d\x0a\x0d\x0aAAECAw==\x0d\x0a--b1--\x0d\x0aep=a.bin\x0d\x0a");
    let t = std::time::Instant::now();
    let p = parse(&raw);
    fn count(p: &Part) -> usize {
        1 + match &p.kind {
            PartKind::Leaf => 0,
            PartKind::Multipart(c) => c.iter().map(count).sum(),
            PartKind::Message(_, inner) => count(inner),
        }
    }
    assert!(count(&p.root) <= 3, "{} parts", count(&p.root));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn message_ids_of_headers() {
    assert_eq!(message_ids("<a@b>"), vec!["a@b"]);
    assert_eq!(
        message_ids(" <a@b>\r\n\t<c@d> (comment) <e\r\n @f>"),
        vec!["a@b", "c@d", "e@f"]
    );
    assert_eq!(message_ids("Joe's message <x@y> of Monday"), vec!["x@y"]);
    assert_eq!(message_ids("no brackets"), Vec::<String>::new());
    assert_eq!(message_ids("<<a@b>"), vec!["a@b"]);
    assert_eq!(message_ids("<> <unterminated"), Vec::<String>::new());
}

#[test]
fn sort_fields_are_decoded() {
    let raw = b"From: =?utf-8?q?J=C3=BCrgen?= <j@x.org>, b@y\r\n\
To: undisclosed: ;, \"Zed Z\" <z@x>\r\n\
Subject: =?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=\r\n\tfolded\r\n\
References: <r1@x> <r2@x>\r\n\t<r3@x>\r\n\
In-Reply-To: <r3@x>\r\n\
\r\n\
body\r\n";
    let m = parse(raw);
    assert_eq!(m.sort.subject.as_deref(), Some("Re: Grüße folded"));
    assert_eq!(m.sort.from_display.as_deref(), Some("Jürgen"));
    assert_eq!(m.sort.to_display.as_deref(), Some("Zed Z"));
    assert_eq!(m.sort.references, vec!["r1@x", "r2@x", "r3@x"]);
    let plain = parse(b"From: a@b\r\n\r\nx\r\n");
    assert_eq!(plain.sort.from_display, None);
    assert_eq!(plain.sort.subject, None);
    assert!(plain.sort.references.is_empty());
}

#[test]
fn older_structure_versions_are_parsed_again() {
    #[derive(serde::Serialize)]
    struct V1<'a> {
        root: &'a Part,
        envelope: &'a Envelope,
        sent_date: Option<i64>,
        search_headers: &'a str,
        search_body: &'a str,
        preview: &'a str,
    }
    let m = parse(NESTED);
    let mut old = vec![1u8];
    old.extend(
        postcard::to_allocvec(&V1 {
            root: &m.root,
            envelope: &m.envelope,
            sent_date: m.sent_date,
            search_headers: &m.search_headers,
            search_body: &m.search_body,
            preview: &m.preview,
        })
        .unwrap(),
    );
    assert_eq!(ParsedMessage::decode(&old), None);
    // The current version round-trips; unknown versions do not decode.
    assert_eq!(ParsedMessage::decode(&m.encode()), Some(m.clone()));
    let mut future = m.encode();
    future[0] = 99;
    assert_eq!(ParsedMessage::decode(&future), None);
}

#[test]
fn preview_is_the_first_text_body_without_quotes() {
    let mp = b"From: a@x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nbody  text\r\n> quoted line\r\n  >> deeper\r\nend\r\n\
--b\r\nContent-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment\r\n\r\nattached\r\n--b--\r\n";
    assert_eq!(parse(mp).preview, "body text end");
    let html = b"From: a@x\r\nContent-Type: text/html\r\n\r\n<p>Hi <b>Bob</b></p>&amp; more\r\n";
    assert_eq!(parse(html).preview, "Hi Bob & more");
    let alt = b"From: a@x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nplain version\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n--b--\r\n";
    assert_eq!(parse(alt).preview, "plain version");
    let only_attachment =
        b"From: a@x\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n";
    assert_eq!(parse(only_attachment).preview, "");
    let long = format!("From: a@x\r\n\r\n{}\r\n", "abcd ".repeat(100));
    let p = parse(long.as_bytes()).preview;
    assert!(p.chars().count() <= 200 && p.starts_with("abcd abcd"));
}

#[test]
fn sections_inside_message_rfc822_are_numbered_as_rfc_9051() {
    // A message/rfc822 at the top, holding a multipart.
    let raw = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n\
--q\r\n\r\none\r\n--q\r\nContent-Type: message/rfc822\r\n\r\nSubject: deep\r\n\r\ndeep body\r\n--q--\r\n\r\nepilogue\r\n";
    let m = parse(raw);
    let s = |p: &Part| slice(raw, p.offset_body, p.offset_end).to_string();
    // 1 is the top's body: the whole encapsulated message.
    assert_eq!(s(m.root.find(&[1]).unwrap()), s(&m.root));
    let PartKind::Message(_, inner) = &m.root.kind else {
        panic!("not a message")
    };
    // Its body runs to the end, epilogue included (1.TEXT).
    assert!(s(inner).ends_with("--q--\r\n\r\nepilogue\r\n"));
    assert_eq!(s(m.root.find(&[1, 1]).unwrap()), "one");
    let two = m.root.find(&[1, 2]).unwrap();
    assert_eq!(s(two), "Subject: deep\r\n\r\ndeep body");
    // 1.2.1 is the deep message's single body.
    assert_eq!(s(m.root.find(&[1, 2, 1]).unwrap()), "deep body");
    assert!(m.root.find(&[1, 3]).is_none());
    assert!(m.root.find(&[2]).is_none());
    assert!(m.root.find(&[1, 2, 2]).is_none());
}

#[test]
fn empty_parts_and_invalid_content_types() {
    let raw = b"Content-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\nContent-Type: text/plain\r\n\r\n\
--e\r\nContent-Type: text/html\r\n\r\n\r\n--e\r\nContent-Type: te xt/plain; charset=utf-8\r\n\r\nx\r\n\
--e\r\nContent-Type: multipart/mixed\r\n\r\ny\r\n--e--\r\n";
    let m = parse(raw);
    let PartKind::Multipart(parts) = &m.root.kind else {
        panic!("not multipart")
    };
    let h = |p: &Part| slice(raw, p.offset_header, p.offset_body).to_string();
    // The line end before a boundary is the boundary's, also after a header.
    assert_eq!(h(&parts[0]), "Content-Type: text/plain\r\n");
    assert_eq!((parts[0].body_len(), parts[0].body_lines), (0, 0));
    assert_eq!(h(&parts[1]), "Content-Type: text/html\r\n\r\n");
    assert_eq!((parts[1].body_len(), parts[1].body_lines), (0, 0));
    // Invalid type, and a multipart without boundary: text/plain, us-ascii.
    for p in &parts[2..] {
        assert_eq!(
            (p.mime_type.as_str(), p.mime_subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(p.params, vec![("charset".into(), "us-ascii".into())]);
        assert_eq!(p.kind, PartKind::Leaf);
    }
}

#[test]
fn encoded_message_rfc822_is_still_a_message() {
    let raw =
        b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: message/rfc822\r\n\
Content-Transfer-Encoding: base64\r\n\r\nRnJvbTogeEB5DQo=\r\n--m--\r\n";
    let m = parse(raw);
    let p = m.root.find(&[1]).unwrap();
    let PartKind::Message(env, inner) = &p.kind else {
        panic!("not a message: {p:?}")
    };
    assert_eq!(**env, Envelope::default());
    assert_eq!(inner.offset_header, p.offset_body);
    assert_eq!(inner.offset_end, p.offset_end);
}

#[test]
fn part_headers_are_in_the_body_search_text() {
    let m = parse(NESTED);
    // The attachment's file name, the forwarded message's header; not in the top header.
    assert!(m.search_body.contains("filename=a.bin"));
    assert!(m.search_body.contains("name=a.bin"));
    assert!(m.search_body.contains("Subject: inner"));
    assert!(!m.search_headers.contains("a.bin"));
    assert!(m
        .search_headers
        .contains("Content-Type: multipart/mixed; boundary=outer"));
}

#[test]
fn an_inner_multipart_without_its_closing_boundary_ends_at_the_outer_one() {
    let raw = b"Content-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\n\
Content-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\n\
plain\r\n\r\n--out\r\nContent-Type: text/plain\r\n\r\nafter zanzibar\r\n\r\n--out--\r\n";
    let m = parse(raw);
    let s = |p: &Part| slice(raw, p.offset_body, p.offset_end).to_string();
    let PartKind::Multipart(parts) = &m.root.kind else {
        panic!("not multipart")
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].mime_subtype, "alternative");
    assert_eq!(s(m.root.find(&[1, 1]).unwrap()), "plain\r\n");
    assert_eq!(s(&parts[1]), "after zanzibar\r\n");
    assert_eq!(
        slice(raw, parts[1].offset_header, parts[1].offset_body),
        "Content-Type: text/plain\r\n\r\n"
    );
    assert!(m.search_body.contains("after zanzibar"));
    assert!(m.search_body.contains("boundary=in"));
    // Well-formed multiparts are split as before.
    let n = parse(NESTED);
    let PartKind::Multipart(parts) = &n.root.kind else {
        panic!("not multipart")
    };
    assert_eq!(parts.len(), 3);
}

#[test]
fn a_multipart_without_delimiters_has_one_empty_part() {
    let raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\nonly a preamble\r\n";
    let m = parse(raw);
    let PartKind::Multipart(parts) = &m.root.kind else {
        panic!("not multipart: {:?}", m.root)
    };
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].mime_type.as_str(), parts[0].body_len()),
        ("text", 0)
    );
    assert_eq!(parts[0].header_len(), 0);
}

/// The head (issue 18) and the tree alone decode to exactly what the full structure holds.
#[test]
fn head_and_root_decode_like_the_structure() {
    let mut samples: Vec<Vec<u8>> = vec![
        NESTED.to_vec(),
        b"Subject: plain\r\n\r\nbody\r\n".to_vec(),
        b"References: <a@x> <b@x>\r\nIn-Reply-To: <b@x>\r\nFrom: \"Q\" <q@x>\r\n\r\n".to_vec(),
        Vec::new(),
    ];
    samples.push(b"Content-Type: message/rfc822\r\n\r\n".iter().chain(NESTED).copied().collect());
    for raw in samples {
        let m = parse(&raw);
        let head = ParsedMessage::decode_head(&m.encode_head()).expect("head decodes");
        assert_eq!(head.envelope, m.envelope);
        assert_eq!(head.sent_date, m.sent_date);
        assert_eq!(head.search_headers, m.search_headers);
        assert_eq!(head.sort, m.sort);
        assert!(head.search_body.is_empty() && head.preview.is_empty());
        let root = ParsedMessage::decode_root(&m.encode()).expect("root decodes");
        assert_eq!(root, m.root);
    }
    // Another version is not read.
    let mut other = parse(NESTED).encode_head();
    other[0] = STRUCTURE_VERSION + 1;
    assert!(ParsedMessage::decode_head(&other).is_none());
    assert!(ParsedMessage::decode_head(&[]).is_none());
}

#[test]
fn with_prefix_reads_like_a_parse_of_the_joined_octets() {
    // What rspamd's scan adds above the message, and the shapes a filter reads: nested
    // and encoded message/rfc822, multipart, headerless, folded first line, and added
    // fields that change how the message reads (then `joined` is parsed whole).
    let encoded: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\
Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
RnJvbTogeEB5DQpTdWJqZWN0OiBoaQ0KDQpib2R5DQo=\r\n--m--\r\n";
    let double: &[u8] = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: middle\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext\r\n";
    let bodies: Vec<&[u8]> = vec![
        NESTED,
        encoded,
        double,
        b"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n",
        b"Subject: no body",
        b"\r\nno header\r\n",
        b" folded\r\nSubject: x\r\n\r\nbody\r\n",
        b"no header at all",
        b"",
    ];
    let prefixes: Vec<&[u8]> = vec![
        b"",
        b"X-Spam-Status: No, score=1.00 required=15.00 action=\"no action\"\r\n",
        b"Authentication-Results: mx.example.com; spf=pass\r\n smtp.mailfrom=a@b\r\nX-Spam: Yes\r\nSubject: added\r\n",
        b"Content-Type: text/plain\r\n",
        b"X-Unended: no line end",
    ];
    for body in &bodies {
        for prefix in &prefixes {
            let joined = [*prefix, *body].concat();
            let (structure, message) = parse_shared(body);
            assert_eq!(structure, parse(body));
            let got = with_prefix(message, body, &joined);
            let want = MessageParser::default().parse(&joined[..]);
            assert_eq!(
                got,
                want,
                "prefix {:?} body {:?}",
                String::from_utf8_lossy(prefix),
                String::from_utf8_lossy(body)
            );
        }
    }
    // The usual case reuses the parse of the message (its text still points into the
    // message's octets) rather than parsing the joined octets again.
    let body: &[u8] = b"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";
    let joined = [&prefixes[2][..], body].concat();
    let m = with_prefix(parse_shared(body).1, body, &joined).unwrap();
    let PartType::Text(std::borrow::Cow::Borrowed(text)) = &m.parts[0].body else {
        panic!("{:?}", m.parts[0].body)
    };
    assert!(body.as_ptr_range().contains(&text.as_ptr()));
    assert_eq!(m.parts[0].headers.len(), 5);
}
