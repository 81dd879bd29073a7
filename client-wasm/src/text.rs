//! Messages put together without `core::fmt`: pieces concatenated, numbers and the codec's
//! errors written by midge-codec's `text` module. No `format!` or `Display` is reached, so
//! the formatting machinery stays out of the `.wasm` (about 4 KB gzip).

use alloc::string::String;
use midge_codec::ReasonCode;
pub(crate) use midge_codec::text::push_decimal;

/// The pieces, one after another. (A loop, not `concat`: `concat` and `join` share a generic
/// routine that is half a kilobyte in the `.wasm`.)
pub(crate) fn cat(pieces: &[&str]) -> String {
    let mut out = String::new();
    for piece in pieces {
        out.push_str(piece);
    }
    out
}

/// The items, separated by `, `.
pub(crate) fn list<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item.as_ref());
    }
    out
}

/// `n` in decimal.
pub(crate) fn decimal(n: u64) -> String {
    let mut out = String::new();
    push_decimal(&mut out, n);
    out
}

/// What `write` appends to an empty string.
pub(crate) fn written(write: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    write(&mut out);
    out
}

/// `Not authorized (0x87)`.
pub(crate) fn reason(code: ReasonCode) -> String {
    written(|out| code.write_text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_numbers_and_codes() {
        assert_eq!(cat(&["a", "", "bc"]), "abc");
        assert_eq!(list(&["a", "b", "c"]), "a, b, c");
        assert_eq!(list::<&str>(&[]), "");
        assert_eq!(decimal(1024), "1024");
        assert_eq!(reason(ReasonCode::NotAuthorized), "Not authorized (0x87)");
    }
}
