//! WordPiece: a word becomes the longest vocabulary pieces from the left, continuations
//! spelled with a `##` prefix; a word with no such split, or longer than
//! [`MAX_CHARS_PER_WORD`] characters, becomes one `[UNK]`.

use std::collections::HashMap;

/// Words longer than this many characters become `[UNK]` (HF's `max_input_chars_per_word`).
pub const MAX_CHARS_PER_WORD: usize = 100;

/// Token strings to ids, from `vocab.txt` (one token per line; the line number is the id).
pub struct Vocab {
    ids: HashMap<String, u32>,
    longest: usize,
    /// Lines read: one past the largest id.
    lines: usize,
}

impl Vocab {
    /// The vocabulary of `text`, one token per line (trailing whitespace trimmed; a token
    /// listed twice keeps its last line, as HF's loaders do).
    pub fn parse(text: &str) -> Vocab {
        let mut ids = HashMap::new();
        let (mut longest, mut lines) = (0, 0);
        for (id, token) in text.lines().enumerate() {
            let token = token.trim_end();
            longest = longest.max(token.len());
            ids.insert(token.to_string(), id as u32);
            lines = id + 1;
        }
        Vocab {
            ids,
            longest,
            lines,
        }
    }

    /// The id of `token`.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// One past the largest id (the file's line count; more than [`Vocab::len`] when a token
    /// is listed twice): the rows an embedding table needs.
    pub fn id_end(&self) -> usize {
        self.lines
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Appends the WordPiece ids of `word` to `out` (`unk` when it cannot be split);
    /// `piece` is scratch space for `##` continuations.
    pub fn word_ids(&self, word: &str, unk: u32, piece: &mut String, out: &mut Vec<u32>) {
        if word.chars().count() > MAX_CHARS_PER_WORD {
            out.push(unk);
            return;
        }
        let before = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len().min(start + self.longest);
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            let found = loop {
                if end <= start {
                    break None;
                }
                let id = if start == 0 {
                    self.id(&word[..end])
                } else {
                    piece.clear();
                    piece.push_str("##");
                    piece.push_str(&word[start..end]);
                    self.id(piece)
                };
                if id.is_some() {
                    break id;
                }
                end -= 1;
                while !word.is_char_boundary(end) {
                    end -= 1;
                }
            };
            match found {
                Some(id) => out.push(id),
                None => {
                    out.truncate(before);
                    out.push(unk);
                    return;
                }
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_first_with_continuations() {
        let vocab = Vocab::parse("[UNK]\nun\n##aff\n##able\naff\n##a\n##ff\n");
        let ids = |word: &str| {
            let (mut piece, mut out) = (String::new(), Vec::new());
            vocab.word_ids(word, 0, &mut piece, &mut out);
            out
        };
        assert_eq!(ids("unaffable"), [1, 2, 3]);
        assert_eq!(ids("affa"), [4, 5]);
        assert_eq!(ids("unx"), [0]);
        assert_eq!(ids(&"a".repeat(101)), [0]);
    }
}
