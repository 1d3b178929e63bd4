//! Text with `{…}` holes, as both kinds of template write it: a poll request's
//! (`{since:%Y-%m-%d}`, schemas::poll::template) and a mapping rule's (`{network}-{id}`,
//! schemas::rule). `{{` and `}}` are literal braces. What a hole may hold is the
//! caller's to check.

/// One piece of a template's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Braced {
    Text(String),
    /// What was between the braces, and the character where the hole starts.
    Hole {
        inner: String,
        at: usize,
    },
}

/// `text` split into literal text and holes; the error names the character.
pub fn split(text: &str) -> Result<Vec<Braced>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|(_, n)| *n) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '}' => return Err(format!("a lone `}}` at character {at} (write `}}}}`)")),
            '{' => {
                let mut inner = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return Err(format!("`{{` at character {at} is not closed"));
                }
                if !literal.is_empty() {
                    pieces.push(Braced::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Braced::Hole { inner, at });
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Braced::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holes_escapes_and_errors() {
        assert_eq!(
            split("a{{b}}{c}d").unwrap(),
            vec![
                Braced::Text("a{b}".into()),
                Braced::Hole {
                    inner: "c".into(),
                    at: 6
                },
                Braced::Text("d".into())
            ]
        );
        assert!(split("x {y").unwrap_err().contains("not closed"));
        assert!(split("x } y")
            .unwrap_err()
            .contains("lone `}` at character 2"));
    }

    proptest! {
        #[test]
        fn never_panics_and_text_without_braces_is_itself(text in ".{0,40}") {
            let split = split(&text);
            if !text.contains(['{', '}']) {
                prop_assert_eq!(split.unwrap(), if text.is_empty() { vec![] } else { vec![Braced::Text(text.clone())] });
            }
        }
    }
}
