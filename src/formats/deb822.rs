//! A zero-copy deb822 paragraph scanner.
//!
//! deb822 is the "Field: value" format of Debian's control files, `Release`
//! and `Packages` indices: paragraphs separated by blank lines, a field's
//! value continued on following lines that start with a space or tab.
//!
//! Written here rather than taken from `deb822-fast` because publishing
//! needs what a parser that re-serialises cannot give: the exact byte span
//! of each paragraph and field, so a stanza is copied verbatim with only its
//! `Filename` rewritten, and the line number of a malformed line for the
//! error message. It borrows every value from the input and allocates one
//! small vector per paragraph.
//!
//! Like all of `formats/`, in memory only: no file system, no network.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct Deb822Error {
    pub line: usize,
    pub problem: &'static str,
}

#[derive(Debug, Clone)]
pub struct Field<'a> {
    pub name: &'a str,
    /// The value with surrounding whitespace trimmed; continuation lines
    /// keep their newlines and leading space.
    pub value: &'a str,
    /// Byte range of the whole field (name to final newline) in the input.
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Paragraph<'a> {
    /// Byte range of the paragraph in the input (up to its last newline).
    pub span: Range<usize>,
    /// 1-based line number of the paragraph's first line.
    pub line: usize,
    pub fields: Vec<Field<'a>>,
}

impl<'a> Paragraph<'a> {
    /// The value of the first field called `name` (case-insensitive, as
    /// deb822 field names are).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.field(name).map(|f| f.value)
    }

    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// Iterates over the paragraphs of `text`.
pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    paragraphs_from(text, 1)
}

/// Iterates over the paragraphs of `text`, a piece of a larger text whose
/// first line is line `line` of the whole (for the line numbers of
/// paragraphs and errors).
pub fn paragraphs_from(text: &str, line: usize) -> Paragraphs<'_> {
    Paragraphs { text, pos: 0, line }
}

pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, Deb822Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut fields: Vec<Field<'a>> = Vec::with_capacity(24);
        let mut start = None;
        let mut start_line = self.line;
        // Byte-wise: an index is millions of short lines, and the generic
        // `str` searches cost more per line than the line itself.
        while self.pos < text.len() {
            let line_start = self.pos;
            let line_end = memchr::memchr(b'\n', &bytes[line_start..])
                .map_or(text.len(), |i| line_start + i + 1);
            let line_no = self.line;
            self.pos = line_end;
            self.line += 1;
            let mut content_end = line_end;
            while content_end > line_start && matches!(bytes[content_end - 1], b'\n' | b'\r') {
                content_end -= 1;
            }
            let content = &text[line_start..content_end];
            let blank = match content.as_bytes().first() {
                None => true,
                Some(b) if b.is_ascii() && !b.is_ascii_whitespace() => false,
                // Whitespace first, ASCII or not: blank if nothing else.
                Some(_) => content.trim().is_empty(),
            };
            if blank {
                if start.is_some() {
                    break;
                }
                continue;
            }
            if content.starts_with('#') && start.is_none() {
                continue;
            }
            if start.is_none() {
                start = Some(line_start);
                start_line = line_no;
            }
            if content.starts_with([' ', '\t']) {
                let Some(last) = fields.last_mut() else {
                    return Some(Err(Deb822Error {
                        line: line_no,
                        problem: "continuation line before any field",
                    }));
                };
                let value_start = last.value.as_ptr() as usize - text.as_ptr() as usize;
                let value_start = if last.value.is_empty() {
                    line_start
                } else {
                    value_start
                };
                last.value = text[value_start..content_end].trim();
                last.span.end = line_end;
                continue;
            }
            // The name runs to the first colon and holds no blank.
            let mut colon = None;
            let mut blank_in_name = false;
            for (i, &b) in content.as_bytes().iter().enumerate() {
                match b {
                    b':' => {
                        colon = Some(i);
                        break;
                    }
                    b' ' | b'\t' => blank_in_name = true,
                    _ => {}
                }
            }
            let Some(colon) = colon else {
                return Some(Err(Deb822Error {
                    line: line_no,
                    problem: "expected `Field: value`",
                }));
            };
            if colon == 0 || blank_in_name {
                return Some(Err(Deb822Error {
                    line: line_no,
                    problem: "invalid field name",
                }));
            }
            let name = &content[..colon];
            let value = content[colon + 1..].trim();
            fields.push(Field {
                name,
                value,
                span: line_start..line_end,
            });
        }
        let start = start?;
        let end = fields.last().map_or(start, |f| f.span.end);
        Some(Ok(Paragraph {
            span: start..end,
            line: start_line,
            fields,
        }))
    }
}

/// Returns the text of a clearsigned (`InRelease`) message without its
/// OpenPGP armour and with dash-escaping undone. Only for repositories
/// mirrored with verification off; verified input comes from gpgme instead.
pub fn strip_clearsign(text: &str) -> Option<String> {
    let rest = text
        .trim_start()
        .strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----")?;
    let body_start = rest.find("\n\n")? + 2;
    let body = &rest[body_start..];
    let end = body.find("\n-----BEGIN PGP SIGNATURE-----")?;
    let mut out = String::with_capacity(end + 1);
    for line in body[..end].split('\n') {
        out.push_str(line.strip_prefix("- ").unwrap_or(line));
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_continuations_with_spans() {
        let text =
            "Package: a\nDescription: short\n long line\n .\n more\nSize: 3\n\n\nPackage: b\n";
        let ps: Vec<_> = paragraphs(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(
            ps[0].get("Description"),
            Some("short\n long line\n .\n more")
        );
        assert_eq!(ps[0].get("Size"), Some("3"));
        let f = ps[0].field("Size").unwrap();
        assert_eq!(&text[f.span.clone()], "Size: 3\n");
        assert_eq!(&text[ps[1].span.clone()], "Package: b\n");
        assert_eq!(ps[1].line, 9);
    }

    #[test]
    fn multiline_value_starting_on_next_line() {
        let text = "SHA256:\n abc 1 main/x\n def 2 main/y\n";
        let p = paragraphs(text).next().unwrap().unwrap();
        assert_eq!(p.get("SHA256"), Some("abc 1 main/x\n def 2 main/y"));
    }

    #[test]
    fn malformed_line_names_its_line() {
        let text = "Package: a\nVersion: 1\nthis is not a field\n";
        let err = paragraphs(text).next().unwrap().unwrap_err();
        assert_eq!(err.line, 3);
        let err = paragraphs(" leading\n").next().unwrap().unwrap_err();
        assert_eq!(err.line, 1);
    }

    #[test]
    fn strips_clearsign_armour_and_dash_escapes() {
        let signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: x\n- -dash\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(strip_clearsign(signed).unwrap(), "Origin: x\n-dash\n");
    }
}
