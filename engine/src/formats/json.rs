//! A small, strict JSON parser and compact writer (RFC 8259), for HuggingFace config files and
//! safetensors headers.
//!
//! Strict means: exactly one value surrounded only by JSON whitespace, no trailing commas, no
//! comments, no leading zeros, no `NaN`/`Infinity`, no unescaped control characters in strings,
//! no unpaired UTF-16 surrogates in `\u` escapes, and no number outside the `f64` range. Nesting
//! is limited to [`MAX_DEPTH`] arrays and objects so that hostile input cannot overflow the
//! stack of the recursive-descent parser. Errors carry the line and column where parsing stopped.

use std::fmt;

/// The deepest nesting of arrays and objects [`parse`] accepts.
pub const MAX_DEPTH: usize = 128;

/// The largest integer [`Json::as_usize`] returns: `2^53 - 1`, the end of the range in which an
/// `f64` holds every integer exactly.
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// A JSON value. Objects keep their members in document order, duplicates included.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number; [`parse`] only produces finite ones.
    Number(f64),
    /// A string, escapes resolved.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object's members in document order.
    Object(Vec<(String, Json)>),
}

/// Why [`parse`] rejected its input, and where: `expected ',' or '}' at line 3, column 7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// The 1-based line of the offending character (lines end at `\n`).
    pub line: usize,
    /// The 1-based column of the offending character, counted in Unicode scalar values.
    pub column: usize,
    /// What was expected or found, without the position.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for JsonError {}

/// Parses `text` as exactly one JSON value (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Json, JsonError> {
    parse_with_array_limit(text, usize::MAX)
}

/// [`parse`], refusing any array of more than `max_items` items: a reader whose arrays are
/// short by nature (a safetensors header's shapes and offsets) keeps a hostile file from
/// costing many times its size in memory (`[0,0,0,...]` is 2 bytes of text per value).
pub fn parse_with_array_limit(text: &str, max_items: usize) -> Result<Json, JsonError> {
    let mut parser = Parser {
        text,
        rest: text,
        max_items,
    };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.rest.is_empty() {
        Ok(value)
    } else {
        Err(parser.error("expected the end of the input"))
    }
}

impl Json {
    /// The value of member `key` of an object (the last one when the key repeats, as Python's
    /// `json` module keeps); `None` for a missing key or a value that is not an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.as_object()?
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as a `usize` when it is a non-negative integer no larger than
    /// [`MAX_EXACT_INTEGER`] (and `usize::MAX`); `3.0` counts, `3.5`, `-1` and `1e300` do not.
    pub fn as_usize(&self) -> Option<usize> {
        let n = self.as_f64()?;
        if n >= 0.0 && n.fract() == 0.0 && n <= MAX_EXACT_INTEGER as f64 {
            usize::try_from(n as u64).ok()
        } else {
            None
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members in document order, if this is an object.
    pub fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The kind of value with its article, for messages: `"a number"`, `"an object"`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl fmt::Display for Json {
    /// Writes compact JSON (no whitespace) that [`parse`] reads back to an equal value.
    /// Integral numbers below `1e16` print without a fraction; other numbers print in Rust's
    /// shortest round-trip form; non-finite numbers, which JSON cannot express, print as `null`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => write_number(f, *n),
            Json::String(s) => write_string(f, s),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Object(members) => {
                f.write_str("{")?;
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_string(f, key)?;
                    write!(f, ":{value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

fn write_number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    if !n.is_finite() {
        f.write_str("null")
    } else if n.fract() == 0.0 && n.abs() < 1e16 && !(n == 0.0 && n.is_sign_negative()) {
        // Exact: |n| < 2^63 and integral.
        write!(f, "{}", n as i64)
    } else {
        // Debug prints the shortest string that reads back to `n`, with an exponent for very
        // large or small magnitudes ("1e300", "1e-7"); both forms are valid JSON numbers.
        write!(f, "{n:?}")
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if c < ' ' => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Recursive-descent parser state: the input and the part of it not yet consumed.
struct Parser<'a> {
    text: &'a str,
    rest: &'a str,
    /// The most items an array may hold.
    max_items: usize,
}

impl<'a> Parser<'a> {
    /// An error at the start of the unconsumed input.
    fn error(&self, message: impl Into<String>) -> JsonError {
        self.error_at(self.rest, message)
    }

    /// An error at the start of `at`, a suffix of the input.
    fn error_at(&self, at: &str, message: impl Into<String>) -> JsonError {
        let consumed = self.text.len().saturating_sub(at.len());
        let before = self.text.as_bytes().get(..consumed).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let column = 1 + before
            .iter()
            .skip(line_start)
            .filter(|&&b| b & 0xc0 != 0x80)
            .count();
        JsonError {
            line,
            column,
            message: message.into(),
        }
    }

    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\n', '\r']);
    }

    /// Consumes `c` (after whitespace) or fails with `expected`.
    fn expect(&mut self, c: char, expected: &str) -> Result<(), JsonError> {
        self.skip_whitespace();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(self.error(expected)),
        }
    }

    /// Consumes `c` (after whitespace) if it comes next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_whitespace();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// One value; `depth` counts the arrays and objects around it.
    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.skip_whitespace();
        let first = self.rest.as_bytes().first().copied();
        if matches!(first, Some(b'[' | b'{')) && depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "arrays and objects nested deeper than {MAX_DEPTH} levels"
            )));
        }
        if self.eat('[') {
            return self.array(depth + 1);
        }
        if self.eat('{') {
            return self.object(depth + 1);
        }
        match first {
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, JsonError> {
        match self.rest.strip_prefix(word) {
            Some(rest) => {
                self.rest = rest;
                Ok(value)
            }
            None => Err(self.error(format!("expected '{word}'"))),
        }
    }

    /// The rest of an array whose '[' was consumed; `depth` counts it and those around it.
    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut items = Vec::new();
        if self.eat(']') {
            return Ok(Json::Array(items));
        }
        loop {
            if items.len() == self.max_items {
                let limit = self.max_items;
                return Err(self.error(format!("an array of more than {limit} items")));
            }
            items.push(self.value(depth)?);
            if self.eat(']') {
                return Ok(Json::Array(items));
            }
            self.expect(',', "expected ',' or ']'")?;
        }
    }

    /// The rest of an object whose '{' was consumed; `depth` counts it and those around it.
    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut members = Vec::new();
        if self.eat('}') {
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_whitespace();
            if !self.rest.starts_with('"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.expect(':', "expected ':'")?;
            members.push((key, self.value(depth)?));
            if self.eat('}') {
                return Ok(Json::Object(members));
            }
            self.expect(',', "expected ',' or '}'")?;
        }
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.rest;
        let mut chars = self.rest.chars();
        chars.next(); // the opening quote
        let mut out = String::new();
        loop {
            let at = chars.as_str();
            match chars.next() {
                None => return Err(self.error_at(start, "unterminated string")),
                Some('"') => break,
                Some('\\') => out.push(self.escape(at, &mut chars)?),
                Some(c) if c < ' ' => {
                    return Err(self.error_at(
                        at,
                        format!(
                            "unescaped control character U+{:04X} in a string",
                            u32::from(c)
                        ),
                    ))
                }
                Some(c) => out.push(c),
            }
        }
        self.rest = chars.as_str();
        Ok(out)
    }

    /// The character of the escape whose backslash starts `at`; `chars` is just past the
    /// backslash.
    fn escape(&self, at: &str, chars: &mut std::str::Chars<'_>) -> Result<char, JsonError> {
        Ok(match chars.next() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('/') => '/',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                let first = self.hex4(at, chars)?;
                let code = match first {
                    0xd800..=0xdbff => {
                        let low_at = chars.as_str();
                        let low = match (chars.next(), chars.next()) {
                            (Some('\\'), Some('u')) => self.hex4(low_at, chars)?,
                            _ => 0,
                        };
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(self.error_at(
                                at,
                                format!("unpaired surrogate \\u{first:04X}: a low surrogate \\uDC00..\\uDFFF must follow"),
                            ));
                        }
                        0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00)
                    }
                    0xdc00..=0xdfff => {
                        return Err(self.error_at(
                            at,
                            format!(
                                "unpaired surrogate \\u{first:04X}: no high surrogate before it"
                            ),
                        ))
                    }
                    _ => first,
                };
                char::from_u32(code)
                    .ok_or_else(|| self.error_at(at, format!("invalid code point U+{code:X}")))?
            }
            _ => return Err(self.error_at(at, "invalid escape")),
        })
    }

    /// Four hex digits of a `\u` escape whose backslash starts `at`.
    fn hex4(&self, at: &str, chars: &mut std::str::Chars<'_>) -> Result<u32, JsonError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = chars
                .next()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error_at(at, "expected 4 hex digits after \\u"))?;
            code = code * 16 + digit;
        }
        Ok(code)
    }

    /// A number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<Json, JsonError> {
        let bytes = self.rest.as_bytes();
        let digits_from = |i: usize| {
            bytes
                .iter()
                .skip(i)
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut len = usize::from(bytes.first() == Some(&b'-'));
        match bytes.get(len) {
            Some(b'0') => len += 1,
            Some(b'1'..=b'9') => len += digits_from(len),
            _ => return Err(self.error_after(len, "expected a digit")),
        }
        if bytes.get(len) == Some(&b'.') {
            len += 1;
            let digits = digits_from(len);
            if digits == 0 {
                return Err(self.error_after(len, "expected a digit after '.'"));
            }
            len += digits;
        }
        if matches!(bytes.get(len), Some(b'e' | b'E')) {
            len += 1;
            if matches!(bytes.get(len), Some(b'+' | b'-')) {
                len += 1;
            }
            let digits = digits_from(len);
            if digits == 0 {
                return Err(self.error_after(len, "expected a digit in the exponent"));
            }
            len += digits;
        }
        // The first `len` bytes are ASCII, so `len` is a character boundary.
        let (text, rest) = self.rest.split_at(len);
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => {
                self.rest = rest;
                Ok(Json::Number(n))
            }
            _ => Err(self.error(format!("number {text} is outside the f64 range"))),
        }
    }

    /// An error `len` ASCII bytes into the unconsumed input.
    fn error_after(&self, len: usize, message: &str) -> JsonError {
        let at = self.rest.get(len..).unwrap_or(self.rest);
        self.error_at(at, message)
    }
}
