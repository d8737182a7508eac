//! Oracles the fuzz targets share: independent restatements of a rule, written apart from the
//! server's code on purpose, so that a target compares two implementations rather than one
//! with itself.

/// `%XX` as RFC 3986 spells it: exactly two hex digits after every `%`; `None` otherwise or if
/// the bytes are not UTF-8.
pub fn strict_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = (*b.get(i + 1)? as char).to_digit(16)?;
                let lo = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
