//! A client certificate's identity: the common name (CN) of its subject, read from the DER
//! of a certificate the TLS layer has already verified. Just enough DER for that one field
//! (RFC 5280 §4.1): anything unexpected gives no identity rather than a guess.

/// The tag of a DER SEQUENCE, SET, OBJECT IDENTIFIER and the `[0]` version field.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xA0;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The contents of the element at the start of `input` if it has tag `tag`, and the rest.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = element(input)?;
    (found == tag).then_some((contents, rest))
}

/// The subject's common name, if the certificate has exactly one, as UTF-8 (UTF8String,
/// PrintableString or IA5String).
pub(crate) fn common_name(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = expect(certificate, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    if let Some((_, rest)) = expect(tbs, VERSION) {
        tbs = rest;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        let (_, _, rest) = element(tbs)?;
        tbs = rest;
    }
    let (mut names, _) = expect(tbs, SEQUENCE)?;
    let mut found = None;
    while !names.is_empty() {
        let (mut set, rest) = expect(names, SET)?;
        names = rest;
        while !set.is_empty() {
            let (attribute, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attribute, OID)?;
            if oid != COMMON_NAME {
                continue;
            }
            let (kind, text, _) = element(value)?;
            if !matches!(kind, 0x0C | 0x13 | 0x16) || found.is_some() {
                return None;
            }
            found = Some(std::str::from_utf8(text).ok()?.to_owned());
        }
    }
    found.filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element from its tag and contents.
    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn name(attributes: &[(&[u8], u8, &str)]) -> Vec<u8> {
        let sets: Vec<u8> = attributes
            .iter()
            .flat_map(|(oid, kind, value)| {
                let attribute = [der(OID, oid), der(*kind, value.as_bytes())].concat();
                der(SET, &der(SEQUENCE, &attribute))
            })
            .collect();
        der(SEQUENCE, &sets)
    }

    fn certificate(subject: &[u8]) -> Vec<u8> {
        let tbs = [
            der(VERSION, &der(0x02, &[2])),
            der(0x02, &[0x01, 0x23]),
            der(
                SEQUENCE,
                &der(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
            ),
            name(&[(&COMMON_NAME, 0x0C, "midge test CA")]),
            der(
                SEQUENCE,
                &[der(0x17, b"260101000000Z"), der(0x17, b"270101000000Z")].concat(),
            ),
            subject.to_vec(),
            der(SEQUENCE, &[0; 200]),
        ]
        .concat();
        let signature = [der(SEQUENCE, &[]), der(0x03, &[0, 1, 2])].concat();
        der(SEQUENCE, &[der(SEQUENCE, &tbs), signature].concat())
    }

    const ORGANISATION: [u8; 3] = [0x55, 0x04, 0x0A];

    #[test]
    fn the_subjects_common_name() {
        let subject = name(&[
            (&ORGANISATION, 0x0C, "Midge"),
            (&COMMON_NAME, 0x13, "alice"),
        ]);
        assert_eq!(
            common_name(&certificate(&subject)).as_deref(),
            Some("alice")
        );
        let utf8 = name(&[(&COMMON_NAME, 0x0C, "zoë")]);
        assert_eq!(common_name(&certificate(&utf8)).as_deref(), Some("zoë"));
    }

    #[test]
    fn no_identity_rather_than_a_guess() {
        let none = name(&[(&ORGANISATION, 0x0C, "Midge")]);
        assert_eq!(common_name(&certificate(&none)), None);
        let two = name(&[(&COMMON_NAME, 0x0C, "alice"), (&COMMON_NAME, 0x0C, "bob")]);
        assert_eq!(common_name(&certificate(&two)), None);
        let bmp = name(&[(&COMMON_NAME, 0x1E, "alice")]);
        assert_eq!(common_name(&certificate(&bmp)), None);
        let whole = certificate(&name(&[(&COMMON_NAME, 0x0C, "alice")]));
        for cut in 0..whole.len() {
            assert_eq!(common_name(whole.get(..cut).unwrap()), None, "cut at {cut}");
        }
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
