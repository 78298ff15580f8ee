//! Message search: the query language (words match as prefixes, `"quoted
//! words"` as phrases, all must match) and the snippet with the matches
//! marked. Both stores find candidates their own way (SQLite FTS5, MongoDB
//! regular expressions); the snippet is made here, the same for both.

use serde::Serialize;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most terms in one query.
pub const MAX_TERMS: usize = 8;
/// Most words in one quoted phrase.
pub const MAX_PHRASE_WORDS: usize = 8;
/// Characters of context shown around the first match.
const CONTEXT_CHARS: usize = 60;

/// One term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Matches words starting with it (`ship` finds "shipping").
    Prefix(String),
    /// Matches these words in this order (`"left the warehouse"`).
    Phrase(Vec<String>),
}

impl Term {
    /// The words of the term, lowercased.
    pub fn words(&self) -> Vec<&str> {
        match self {
            Self::Prefix(w) => vec![w.as_str()],
            Self::Phrase(ws) => ws.iter().map(String::as_str).collect(),
        }
    }
}

/// A parsed search: every term must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub terms: Vec<Term>,
}

/// Splits text into lowercase words (letters and digits); what both stores
/// and the snippet agree a "word" is.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

impl SearchQuery {
    /// Parses `q`: words and `"phrases"`; punctuation separates words.
    /// Only the first [`MAX_TERMS`] terms count. A query with no letter or
    /// digit has no terms (and finds nothing).
    pub fn parse(q: &str) -> Result<Self, String> {
        if q.is_empty() {
            return Err("q is empty".into());
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(format!("q is longer than {MAX_QUERY_CHARS} characters"));
        }
        let mut terms = Vec::new();
        for (i, part) in q.split('"').enumerate() {
            // Odd parts were inside quotes (an unclosed quote runs to the end).
            if i % 2 == 1 {
                let ws = words(part);
                match ws.len() {
                    0 => {}
                    1 => terms.push(Term::Prefix(ws.into_iter().next().unwrap_or_default())),
                    n if n > MAX_PHRASE_WORDS => {
                        return Err(format!("a quoted phrase has at most {MAX_PHRASE_WORDS} words, this one {n}"));
                    }
                    _ => terms.push(Term::Phrase(ws)),
                }
            } else {
                terms.extend(words(part).into_iter().map(Term::Prefix));
            }
        }
        terms.truncate(MAX_TERMS);
        Ok(Self { terms })
    }
}

/// A range of characters (not bytes) in a snippet that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Highlight {
    /// First character of the match, counted in Unicode scalar values.
    pub start: usize,
    /// One past its last character.
    pub end: usize,
}

/// Where each term matches in `text`: (word index of the first word, words long).
fn matches(text_words: &[(usize, usize, String)], query: &SearchQuery) -> Option<Vec<(usize, usize)>> {
    if query.terms.is_empty() {
        return None;
    }
    let mut found = Vec::new();
    for term in &query.terms {
        let tw = term.words();
        let mut any = false;
        for i in 0..text_words.len() {
            let ok = match term {
                Term::Prefix(p) => text_words[i].2.starts_with(p.as_str()),
                Term::Phrase(_) => {
                    i + tw.len() <= text_words.len()
                        && tw.iter().enumerate().all(|(k, w)| {
                            let have = &text_words[i + k].2;
                            // The last word of a phrase may be a prefix, as FTS5 treats it.
                            if k + 1 == tw.len() { have.starts_with(w) } else { have == w }
                        })
                }
            };
            if ok {
                found.push((i, tw.len()));
                any = true;
            }
        }
        if !any {
            return None;
        }
    }
    Some(found)
}

/// Whether every term of `query` matches `text` (the final check on candidates).
pub fn is_match(text: &str, query: &SearchQuery) -> bool {
    matches(&word_spans(text), query).is_some()
}

/// Words of `text` with their character ranges.
fn word_spans(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start = None;
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i, chars[s..i].iter().collect::<String>().to_lowercase()));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, chars.len(), chars[s..].iter().collect::<String>().to_lowercase()));
    }
    out
}

/// A window of `text` around its first match, with every match in the
/// window marked (character offsets into the snippet). `None` when the
/// text does not match.
pub fn snippet(text: &str, query: &SearchQuery) -> Option<(String, Vec<Highlight>)> {
    let spans = word_spans(text);
    let mut found = matches(&spans, query)?;
    found.sort_unstable();
    let chars: Vec<char> = text.chars().collect();
    let first = spans[found[0].0].0;
    let from = first.saturating_sub(CONTEXT_CHARS);
    let to = (first + CONTEXT_CHARS * 2).min(chars.len());
    // Start and end on word boundaries where possible.
    let from = if from == 0 { 0 } else { (from..first).find(|&i| !chars[i].is_alphanumeric()).map_or(from, |i| i + 1) };
    let to =
        if to == chars.len() { to } else { (first..to).rev().find(|&i| !chars[i].is_alphanumeric()).unwrap_or(to) };
    let prefix = if from > 0 { "…" } else { "" };
    let suffix = if to < chars.len() { "…" } else { "" };
    let offset = prefix.chars().count();
    let body: String = chars[from..to].iter().collect();
    let mut marks: Vec<Highlight> = found
        .iter()
        .map(|&(w, n)| (spans[w].0, spans[w + n - 1].1))
        .filter(|&(s, e)| s >= from && e <= to)
        .map(|(s, e)| Highlight { start: s - from + offset, end: e - from + offset })
        .collect();
    marks.dedup();
    Some((format!("{prefix}{}{suffix}", body.trim_end()), marks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> SearchQuery {
        SearchQuery::parse(s).expect("valid query")
    }

    #[test]
    fn queries_parse_into_prefixes_and_phrases() {
        assert_eq!(
            q("Ship KE-2231").terms,
            vec![Term::Prefix("ship".into()), Term::Prefix("ke".into()), Term::Prefix("2231".into())]
        );
        assert_eq!(
            q("\"left the warehouse\" today").terms,
            vec![Term::Phrase(vec!["left".into(), "the".into(), "warehouse".into()]), Term::Prefix("today".into())]
        );
        assert!(q("  \"\" ,,, ").terms.is_empty(), "nothing to look for");
        assert_eq!(q(&"a ".repeat(12)).terms.len(), MAX_TERMS);
        let long = format!("\"{}\"", "w ".repeat(MAX_PHRASE_WORDS + 1));
        assert!(SearchQuery::parse(&long).is_err_and(|e| e.contains("at most 8 words")));
        assert_eq!(q(&format!("\"{}\"", "w ".repeat(MAX_PHRASE_WORDS))).terms.len(), 1);
        assert!(SearchQuery::parse("").is_err());
        assert!(SearchQuery::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn prefixes_match_word_starts_and_phrases_match_in_order() {
        assert!(is_match("Shipping to Mombasa", &q("ship")));
        assert!(!is_match("Relationship advice", &q("ship")), "word starts only");
        assert!(is_match("It left the warehouse this morning.", &q("\"left the ware\"")));
        assert!(!is_match("The warehouse left", &q("\"left the warehouse\"")));
        assert!(!is_match("Shipping to Mombasa", &q("ship nairobi")), "every term");
        assert!(is_match("Ünïcode WÖRDS", &q("wör")));
    }

    #[test]
    fn snippets_mark_the_matches() {
        let (s, h) = snippet("Your tracking number is KE-2231.", &q("tracking ke")).expect("match");
        assert_eq!(s, "Your tracking number is KE-2231.");
        let marked: Vec<String> = h.iter().map(|m| s.chars().skip(m.start).take(m.end - m.start).collect()).collect();
        assert_eq!(marked, vec!["tracking", "KE"]);
        let long = format!("{} the parcel arrived {}", "word ".repeat(40), "more ".repeat(40));
        let (s, h) = snippet(&long, &q("parcel")).expect("match");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        let m = h[0];
        assert_eq!(s.chars().skip(m.start).take(m.end - m.start).collect::<String>(), "parcel");
        assert!(snippet("nothing here", &q("parcel")).is_none());
    }
}
