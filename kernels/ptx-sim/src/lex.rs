//! Splits PTX text into words and punctuation, each with its 1-based line.
//!
//! A word is a run of letters, digits and `_ $ % .` (so `ld.global.nc.f32`, `%tid.x`,
//! `$L__BB0_2` and `0f3F800000` are single words); `::` inside a word is kept (as in
//! `.L2::128B`). Comments (`//`, `/* */`) are dropped; strings become one token.

use crate::error::{Result, SimError};

/// One token of PTX text.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier, register, directive, opcode or number.
    Word(String),
    /// One punctuation character: `, ; : [ ] { } ( ) < > + - | ! @ =`.
    Punct(char),
    /// A double-quoted string (its contents).
    Str(String),
}

/// A token and the line it starts on.
#[derive(Clone, Debug)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line.
    pub line: u32,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%' | '.')
}

/// Tokenizes `text`; fails on a character PTX does not use.
pub fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let start = line;
            i += 2;
            loop {
                match chars.get(i) {
                    None => return Err(SimError::parse(start, "unterminated /* comment")),
                    Some('*') if chars.get(i + 1) == Some(&'/') => {
                        i += 2;
                        break;
                    }
                    Some('\n') => line += 1,
                    _ => {}
                }
                i += 1;
            }
        } else if c == '"' {
            let start = line;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None | Some('\n') => return Err(SimError::parse(start, "unterminated string")),
                    Some('"') => break,
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            out.push(Token {
                tok: Tok::Str(s),
                line: start,
            });
        } else if is_word_char(c) {
            let mut s = String::new();
            while i < chars.len() {
                let ch = chars[i];
                if is_word_char(ch) {
                    s.push(ch);
                    i += 1;
                } else if ch == ':' && chars.get(i + 1) == Some(&':') {
                    s.push_str("::");
                    i += 2;
                } else {
                    break;
                }
            }
            out.push(Token {
                tok: Tok::Word(s),
                line,
            });
        } else if ",;:[]{}()<>+-|!@=".contains(c) {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        } else {
            return Err(SimError::parse(line, format!("unexpected character {c:?}")));
        }
    }
    Ok(out)
}
