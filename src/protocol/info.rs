//! The info protocol's text framing (spec §7.1).
//!
//! Request body: command strings separated and terminated by `\n`. Response body: for each
//! command, in request order, `<command exactly as received>\t<value>\n`. Clients split the
//! reply on `\n` and then on the first `\t`, so neither may appear inside a name or value.

use super::frame::{encode_frame, TYPE_INFO};

/// The commands of an info request, in order. Empty lines are dropped; invalid UTF-8 is
/// replaced (U+FFFD) rather than refused, so the reply still echoes something recognisable.
/// An empty result means the deprecated "summary" request (empty body).
pub fn parse_info_request(body: &[u8]) -> Vec<String> {
    body.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect()
}

/// The body of an info reply: `name\tvalue\n` per pair. Tabs and newlines inside names or
/// values are replaced with spaces, since either would break the client's parse.
pub fn encode_info_body(pairs: &[(String, String)]) -> Vec<u8> {
    let len = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut body = Vec::with_capacity(len);
    for (name, value) in pairs {
        push_clean(&mut body, name);
        body.push(b'\t');
        push_clean(&mut body, value);
        body.push(b'\n');
    }
    body
}

/// A complete type-1 frame (proto header included) answering an info request.
pub fn encode_info_response(pairs: &[(String, String)]) -> Vec<u8> {
    encode_frame(TYPE_INFO, &encode_info_body(pairs))
}

fn push_clean(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .map(|b| if b == b'\t' || b == b'\n' { b' ' } else { b }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_requests() {
        assert_eq!(
            parse_info_request(b"node\npartition-generation\nbuild\n"),
            vec!["node", "partition-generation", "build"]
        );
        assert_eq!(
            parse_info_request(b"\n\nnode\n\nbuild"),
            vec!["node", "build"]
        );
        assert_eq!(parse_info_request(b""), Vec::<String>::new());
        assert_eq!(parse_info_request(b"a\xffb\n"), vec!["a\u{fffd}b"]);
        assert_eq!(
            parse_info_request(b"sindex-create:ns=test;set=x\n"),
            vec!["sindex-create:ns=test;set=x"]
        );
    }

    #[test]
    fn encodes_replies() {
        let pairs = vec![
            ("node".to_string(), "BB9".to_string()),
            ("build".to_string(), "8.0.0.0".to_string()),
        ];
        let frame = encode_info_response(&pairs);
        assert_eq!(&frame[..8], &[2, 1, 0, 0, 0, 0, 0, 23]);
        assert_eq!(&frame[8..], b"node\tBB9\nbuild\t8.0.0.0\n");
        let dirty = vec![("a\tb".to_string(), "x\ny\tz".to_string())];
        assert_eq!(encode_info_body(&dirty), b"a b\tx y z\n");
        assert_eq!(encode_info_response(&[]), vec![2, 1, 0, 0, 0, 0, 0, 0]);
    }
}
