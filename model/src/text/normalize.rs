//! BERT's text normalisation and word splitting, as HF's fast tokenizer does it
//! (`BertNormalizer` then `BertPreTokenizer`):
//!
//! 1. clean: drop NUL, U+FFFD and "control" characters (categories Cc, Cf, Co; tab, newline
//!    and carriage return count as whitespace), turn whitespace into spaces;
//! 2. CJK ideographs get spaces around them, so each is its own word;
//! 3. strip accents (when asked): NFD, then drop nonspacing marks (Mn);
//! 4. lower-case, character by character (`char::to_lowercase`);
//! 5. split on whitespace, and make every punctuation character (ASCII punctuation or
//!    Unicode P*) a word of its own.

use super::tables::{MARKS, OTHER, PUNCTUATION, STRIPPED};

/// Which normalisation steps run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalization {
    /// Lower-case the text.
    pub lowercase: bool,
    /// Strip accents (HF: `strip_accents`, which follows `lowercase` when unset).
    pub strip_accents: bool,
    /// Put spaces around CJK ideographs.
    pub split_cjk: bool,
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && in_ranges(&OTHER, c)
}

/// ASCII punctuation or Unicode category P*: a word of its own.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || in_ranges(&PUNCTUATION, c)
}

/// The CJK ideograph blocks BERT splits on.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Appends `c` with its accents stripped: NFD without Mn marks (Hangul syllables decompose
/// into their jamo, as NFD does).
fn push_stripped(out: &mut String, c: char) {
    const S_BASE: u32 = 0xAC00;
    const L_BASE: u32 = 0x1100;
    const V_BASE: u32 = 0x1161;
    const T_BASE: u32 = 0x11A7;
    const V_COUNT: u32 = 21;
    const T_COUNT: u32 = 28;
    let code = c as u32;
    if (S_BASE..=0xD7A3).contains(&code) {
        let s = code - S_BASE;
        let jamo = [
            Some(L_BASE + s / (V_COUNT * T_COUNT)),
            Some(V_BASE + (s % (V_COUNT * T_COUNT)) / T_COUNT),
            (!s.is_multiple_of(T_COUNT)).then_some(T_BASE + s % T_COUNT),
        ];
        out.extend(jamo.into_iter().flatten().filter_map(char::from_u32));
        return;
    }
    if in_ranges(&MARKS, c) {
        return;
    }
    match STRIPPED.binary_search_by_key(&code, |&(k, _)| k) {
        Ok(i) => out.push_str(STRIPPED[i].1),
        Err(_) => out.push(c),
    }
}

/// Normalises `text` into `out` (cleared first) by steps 1 to 4 of the module docs;
/// `scratch` is reused space for lower-casing.
pub fn normalize(text: &str, how: Normalization, out: &mut String, scratch: &mut String) {
    out.clear();
    for c in text.chars() {
        if c == '\0' || c == '\u{FFFD}' || is_control(c) {
            continue;
        }
        let c = if is_whitespace(c) { ' ' } else { c };
        let cjk = how.split_cjk && is_cjk(c);
        if cjk {
            out.push(' ');
        }
        let start = out.len();
        if how.strip_accents {
            push_stripped(out, c);
        } else {
            out.push(c);
        }
        if how.lowercase && !out[start..].is_ascii() {
            scratch.clear();
            scratch.extend(out[start..].chars().flat_map(char::to_lowercase));
            out.truncate(start);
            out.push_str(scratch);
        } else if how.lowercase {
            out[start..].make_ascii_lowercase();
        }
        if cjk {
            out.push(' ');
        }
    }
}

/// Calls `word` on every word of normalised text (step 5 of the module docs), in order.
pub fn split_words<'t>(text: &'t str, mut word: impl FnMut(&'t str)) {
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                word(&text[s..i]);
            }
        } else if is_punctuation(c) {
            if let Some(s) = start.take() {
                word(&text[s..i]);
            }
            word(&text[i..i + c.len_utf8()]);
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        word(&text[s..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT_UNCASED: Normalization = Normalization {
        lowercase: true,
        strip_accents: true,
        split_cjk: true,
    };

    fn words(text: &str) -> Vec<String> {
        let (mut normalized, mut scratch) = (String::new(), String::new());
        normalize(text, BERT_UNCASED, &mut normalized, &mut scratch);
        let mut out = Vec::new();
        split_words(&normalized, |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn cleans_strips_lowers_and_splits() {
        assert_eq!(words("Héllo, Wörld!"), ["hello", ",", "world", "!"]);
        assert_eq!(words("a\u{200B}b\tc\u{0}d"), ["ab", "cd"]);
        assert_eq!(words("東京 tower"), ["東", "京", "tower"]);
        assert_eq!(words("한"), ["\u{1112}\u{1161}\u{11AB}"]);
        assert_eq!(words("  "), Vec::<String>::new());
        assert_eq!(words("ÅNGSTRÖM…"), ["angstrom", "…"]);
    }
}
