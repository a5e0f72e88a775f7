//! The caption preprocessing of pycocoevalcap: Stanford CoreNLP 3.4.1's
//! `PTBTokenizer -preserveLines -lowerCase`, then removal of the punctuation tokens
//! `'' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;`, the tokens joined by single
//! spaces. This module reproduces that tokenizer in Rust (no Java).
//!
//! What it reproduces: words split from punctuation and symbols; the contractions
//! `n't 's 're 've 'll 'd 'm` split off (`don't` -> `do n't`, `can't` -> `ca n't`),
//! `cannot gonna gotta wanna lemme gimme 'tis 'twas` split in two; a trailing `'`
//! split off (`kids'` -> `kids '`, but `ol'` and `d'` stay whole); hyphenated words, `a/b`, numbers with `. , : / -` inside and
//! e-mail addresses kept whole; a trailing period kept on single letters, acronyms
//! (`u.s.`, `e.g.`) and CoreNLP's abbreviation list (`mr.`, `etc.`, `inc.`, `jan.` ...,
//! some only when capitalised); brackets turned into `-lrb- -rrb- -lsb- -rsb- -lcb-
//! -rcb-` (lowercased, so the round and curly ones are *not* removed by the punctuation
//! filter, which lists them in upper case, and stay in the caption); runs of `!`/`?`
//! kept as one token (`?!` is not removed); Unicode quotes, dashes and `…` treated as
//! their ASCII forms.
//!
//! Also handled like the Java tokenizer: URLs, e-mail addresses, HTML tags and the
//! entities `&amp; &lt; &gt;`, simple emoticons (`:)` -> `:-rrb-`), `'n'`, `y'all`,
//! `no.` before a number, a comma glued to a following number (`,3`).
//!
//! Known divergences (inputs rare in captions): the Java tokenizer is a large lexer,
//! and inputs outside the rules above (other emoticons and entities, unusual quote
//! placements, URLs with brackets) may split differently. The test corpus of
//! `tests/official.rs` records every input of its corpus known to differ.

/// Punctuation tokens that pycocoevalcap removes after tokenizing.
pub const REMOVED_PUNCTUATION: [&str; 17] = [
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
    "...", ";",
];

/// Abbreviations whose trailing period CoreNLP 3.4.1 keeps in any case.
const ABBREVIATIONS: &[&str] = &[
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon",
    "tue", "tues", "wed", "thu", "thurs", "fri", "ala", "ariz", "calif", "colo", "conn", "ct",
    "dak", "fla", "ga", "ind", "kan", "kans", "ky", "md", "mich", "minn", "mo", "mont", "neb",
    "nev", "okla", "penn", "tenn", "va", "vt", "wis", "wisc", "wyo", "mr", "mrs", "ms", "dr",
    "drs", "prof", "profs", "sen", "sens", "rep", "reps", "atty", "attys", "lt", "col", "gen",
    "messrs", "gov", "govs", "adm", "rev", "maj", "sgt", "cpl", "pvt", "capt", "ste", "ave",
    "pres", "lieut", "hon", "brig", "cmdr", "comdr", "pfc", "spc", "supt", "supts", "det", "mme",
    "mlle", "inc", "co", "cos", "corp", "pty", "pte", "ltd", "plc", "rt", "bancorp", "bhd", "assn",
    "univ", "intl", "sys", "invt", "elec", "natl", "mfg", "mtg", "sr", "bros", "blvd", "rd", "esq",
    "mt", "st", "dept", "tel", "est", "ext", "sq", "jr", "etc", "al", "seq", "vs", "ft", "cf",
];

/// Abbreviations whose trailing period is kept only when capitalised (lower case they
/// are ordinary words).
const CAPITALISED_ABBREVIATIONS: &[&str] = &[
    "ark", "del", "ill", "la", "mass", "miss", "ore", "pa", "tex", "wash", "fig",
];

/// Words split in two, with the split position.
const SPLIT_WORDS: &[(&str, usize)] = &[
    ("cannot", 3),
    ("gonna", 3),
    ("gotta", 3),
    ("wanna", 3),
    ("lemme", 3),
    ("gimme", 3),
    ("'tis", 2),
    ("'twas", 2),
    ("y'all", 2),
];

/// Contraction suffixes split off a word (compared in lower case).
const CONTRACTIONS: &[&str] = &["n't", "'s", "'re", "'ve", "'ll", "'d", "'m", "'n"];

/// Words that keep a leading apostrophe (compared in lower case, without it).
const APOSTROPHE_WORDS: &[&str] = &["s", "re", "ve", "ll", "d", "m", "em", "cause", "n"];

/// Tokenizes one caption like `PTBTokenizer -preserveLines -lowerCase` (newlines are
/// treated as spaces, as pycocoevalcap replaces them). Returns the lowercased tokens,
/// punctuation included.
pub fn ptb_tokenize(caption: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for chunk in caption.split(is_space) {
        if chunk.is_empty() {
            continue;
        }
        let chars: Vec<char> = chunk.chars().map(normalize_char).collect();
        tokenize_chunk(&chars, &mut tokens);
    }
    tokens.iter().map(|t| t.to_lowercase()).collect()
}

/// pycocoevalcap's caption preprocessing: [`ptb_tokenize`], the tokens in
/// [`REMOVED_PUNCTUATION`] removed, the rest joined by single spaces.
pub fn coco_caption_tokens(caption: &str) -> String {
    ptb_tokenize(caption)
        .into_iter()
        .filter(|t| !REMOVED_PUNCTUATION.contains(&t.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Maps typographic quotes to ASCII; other characters unchanged.
fn normalize_char(c: char) -> char {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => '"',
        _ => c,
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Length of the run of `c` starting at `i`.
fn run_len(chars: &[char], i: usize, c: char) -> usize {
    chars[i..].iter().take_while(|&&x| x == c).count()
}

fn tokenize_chunk(chars: &[char], out: &mut Vec<String>) {
    let mut i = 0;
    // Whether a single quote opened earlier in the chunk: it closes on a word's end.
    let mut quote_open = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if let Some((token, len)) = special_token(&chars[i..], i == 0) {
            out.push(token);
            i += len;
            continue;
        }
        match c {
            '(' | ')' | '[' | ']' | '{' | '}' => {
                out.push(bracket(c).to_string());
                i += 1;
            }
            '"' | '`' => {
                out.push("''".to_string());
                i += 1;
            }
            '\u{2014}' | '\u{2013}' => {
                out.push("--".to_string());
                i += 1;
            }
            '\u{2026}' => {
                out.push("...".to_string());
                i += 1;
            }
            '.' => {
                let n = run_len(chars, i, '.');
                if n >= 3 {
                    out.push("...".to_string());
                } else {
                    out.extend(std::iter::repeat_n(".".to_string(), n));
                }
                i += n;
            }
            '-' | '+' if next.is_some_and(|n| n.is_ascii_digit()) && starts_token(chars, i) => {
                i = word(chars, i, quote_open, out);
            }
            '-' => {
                let n = run_len(chars, i, '-');
                out.push(if n >= 2 { "--" } else { "-" }.to_string());
                i += n;
            }
            '!' | '?' => {
                let n = chars[i..]
                    .iter()
                    .take_while(|&&x| x == '!' || x == '?')
                    .count();
                out.push(chars[i..i + n].iter().collect());
                i += n;
            }
            '#' | '@' if next.is_some_and(|n| n.is_alphabetic()) => {
                i = word(chars, i, quote_open, out);
            }
            ',' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i = word(chars, i, quote_open, out);
            }
            '*' | '@' => {
                let n = run_len(chars, i, c);
                out.push(chars[i..i + n].iter().collect());
                i += n;
            }
            '\'' => {
                let (end, opened) = apostrophe(chars, i, quote_open, out);
                quote_open |= opened;
                i = end;
            }
            c if is_word_char(c) => i = word(chars, i, quote_open, out),
            _ => {
                out.push(c.to_string());
                i += 1;
            }
        }
    }
}

/// True when position `i` begins a token (start of chunk or after a bracket or quote).
fn starts_token(chars: &[char], i: usize) -> bool {
    i == 0 || matches!(chars[i - 1], '(' | '[' | '{' | '"' | '\'' | '`')
}

fn bracket(c: char) -> &'static str {
    match c {
        '(' => "-LRB-",
        ')' => "-RRB-",
        '[' => "-LSB-",
        ']' => "-RSB-",
        '{' => "-LCB-",
        _ => "-RCB-",
    }
}

/// A token starting with `'`; returns the end position and whether it opened a quote.
fn apostrophe(chars: &[char], i: usize, quote_open: bool, out: &mut Vec<String>) -> (usize, bool) {
    let rest_len = chars[i + 1..]
        .iter()
        .take_while(|c| c.is_alphanumeric())
        .count();
    let rest: String = chars[i + 1..i + 1 + rest_len].iter().collect();
    let lower = rest.to_lowercase();
    let after = chars.get(i + 1 + rest_len).copied();
    let is_word = rest_len > 0
        && (APOSTROPHE_WORDS.contains(&lower.as_str())
            || lower == "tis"
            || lower == "twas"
            || (rest.starts_with(|c: char| c.is_ascii_digit()) && lower.ends_with('s')));
    if lower == "n" && after == Some('\'') {
        out.push(format!("'{rest}'"));
        return (i + 3, false);
    }
    let numeric = rest.starts_with(|c: char| c.is_ascii_digit());
    if is_word && (after != Some('\'') || numeric) {
        return (word(chars, i, quote_open, out), false);
    }
    if run_len(chars, i, '\'') >= 2 {
        out.push("''".to_string());
        return (i + 2, false);
    }
    out.push("'".to_string());
    (i + 1, rest_len > 0)
}

/// Whether `c` may join two word characters inside a word (`t-shirt`, `a/b`,
/// `o'clock`, `e.g`, `1,000`, `10:30`, `a@b`).
fn is_connector(c: char) -> bool {
    matches!(c, '-' | '/' | '.' | '\'' | ',' | ':' | '@' | '_' | '&')
}

/// Scans a word starting at `start` and pushes its tokens; returns the end position.
/// `quote_open`: a single quote opened earlier in the chunk, so a trailing `'` closes it.
fn word(chars: &[char], start: usize, quote_open: bool, out: &mut Vec<String>) -> usize {
    let mut i = start + 1;
    // Whether the word is a number formatted with `. , :` (then letters end it).
    let mut formatted_number = matches!(chars[start], '-' | '+');
    // `no.` before a number keeps its period.
    let mut attach_period = false;
    while i < chars.len() {
        let c = chars[i];
        if is_word_char(c) || c == '_' {
            if formatted_number && c.is_alphabetic() {
                break;
            }
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let prev = chars[i - 1];
        let joins = is_connector(c)
            && next.is_some_and(is_word_char)
            && match c {
                ',' | ':' => prev.is_ascii_digit() && next.is_some_and(|n| n.is_ascii_digit()),
                '\'' => prev.is_alphabetic() && apostrophe_joins(prev, &chars[i + 1..]),
                '&' => prev.is_uppercase() && next.is_some_and(char::is_uppercase),
                _ => is_word_char(prev),
            };
        if c == '.'
            && next.is_some_and(|n| n.is_ascii_digit())
            && is_number_abbreviation(&chars[start..i])
        {
            attach_period = true;
            break;
        }
        // A signed number joins only `. , :` between digits.
        let signed = matches!(chars[start], '-' | '+');
        if !joins || (signed && !matches!(c, '.' | ',' | ':')) {
            break;
        }
        if matches!(c, '.' | ',' | ':')
            && prev.is_ascii_digit()
            && next.is_some_and(|n| n.is_ascii_digit())
        {
            formatted_number = true;
        }
        i += 1;
    }
    let mut text: String = chars[start..i].iter().collect();
    // A trailing period stays on abbreviations, whatever periods follow.
    let no_before_colon =
        is_number_abbreviation(&chars[start..i]) && matches!(chars.get(i + 1), Some(';' | ':'));
    if chars.get(i) == Some(&'.') && (attach_period || no_before_colon || keeps_period(&text)) {
        text.push('.');
        i += 1;
    }
    // A trailing apostrophe is split off (a closing quote, or `dogs'`), except on
    // `ol'` and `d'`.
    let mut trailing_quote = false;
    if chars.get(i) == Some(&'\'')
        && !chars
            .get(i + 1)
            .is_some_and(|&c| c.is_alphanumeric() || c == '\'')
    {
        let lower = text.to_lowercase();
        if !quote_open && (lower == "ol" || lower == "d") {
            text.push('\'');
        } else {
            trailing_quote = true;
        }
        i += 1;
    }
    push_word(&text, out);
    if trailing_quote {
        out.push("'".to_string());
    }
    i
}

/// Whether a word followed by `.` keeps the period.
fn keeps_period(word: &str) -> bool {
    let lower = word.to_lowercase();
    let mut letters = word.chars();
    let single_letter =
        matches!((letters.next(), letters.next()), (Some(c), None) if c.is_alphabetic());
    let acronym = word.contains('.')
        && word
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(char::is_alphabetic));
    single_letter
        || acronym
        || ABBREVIATIONS.contains(&lower.as_str())
        || (CAPITALISED_ABBREVIATIONS.contains(&lower.as_str())
            && word.starts_with(char::is_uppercase))
        || lower == "ph.d"
        || lower == "ed.d"
}

/// Pushes a word, split into its stem and contraction suffixes.
fn push_word(text: &str, out: &mut Vec<String>) {
    let lower = text.to_lowercase();
    if let Some(&(_, at)) = SPLIT_WORDS.iter().find(|(w, _)| *w == lower) {
        let split = text.char_indices().nth(at).map_or(text.len(), |(b, _)| b);
        out.push(text[..split].to_string());
        out.push(text[split..].to_string());
        return;
    }
    if let Some(at) = lower
        .find("'n'")
        .filter(|&at| at > 0 && at + 3 < lower.len())
        && text.is_char_boundary(at)
        && text.is_char_boundary(at + 3)
    {
        push_word(&text[..at], out);
        out.push(text[at..at + 3].to_string());
        push_word(&text[at + 3..], out);
        return;
    }
    let mut suffixes = Vec::new();
    let mut stem = text;
    while let Some((head, tail)) = split_contraction(stem) {
        suffixes.push(tail);
        stem = head;
    }
    out.push(stem.to_string());
    out.extend(suffixes.iter().rev().map(|s| s.to_string()));
}

/// Splits a contraction suffix off `word` when it ends in one (compared without case)
/// after a letter or digit.
fn split_contraction(word: &str) -> Option<(&str, &str)> {
    CONTRACTIONS.iter().find_map(|suffix| {
        let split = word.len().checked_sub(suffix.len())?;
        let (head, tail) = (word.get(..split)?, word.get(split..)?);
        (tail.eq_ignore_ascii_case(suffix) && head.chars().last()?.is_alphanumeric())
            .then_some((head, tail))
    })
}

/// Whether an apostrophe after a letter joins the letters that follow (`o'clock`,
/// `d'ye`, and the contractions split later) rather than ending the word (`a'b`).
fn apostrophe_joins(prev: char, after: &[char]) -> bool {
    let run: String = after
        .iter()
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    run.chars().count() >= 2
        || matches!(run.as_str(), "s" | "d" | "m" | "n")
        || (run == "t" && matches!(prev, 'n' | 'N'))
}

/// Whether the word is `no` (number abbreviation: `no.1` -> `no. 1`).
fn is_number_abbreviation(word: &[char]) -> bool {
    word.iter().collect::<String>().eq_ignore_ascii_case("no")
}

/// Tokens matched before the ordinary rules: URLs, HTML tags, emoticons, `<<`, `>>`.
/// Returns the token and the number of characters it covers.
fn special_token(chars: &[char], chunk_start: bool) -> Option<(String, usize)> {
    let text: String = chars.iter().collect();
    let lower = text.to_lowercase();
    if chunk_start
        && ["http://", "https://", "ftp://", "www."]
            .iter()
            .any(|p| lower.starts_with(p))
    {
        let mut n = chars
            .iter()
            .take_while(|c| !matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | '"' | '<' | '>'))
            .count();
        while n > 0 && matches!(chars[n - 1], '.' | ',' | ';' | ':' | '!' | '?' | '\'') {
            n -= 1;
        }
        return Some((chars[..n].iter().collect(), n));
    }
    if chars[0] == '<' {
        // `<b>`, `</b>`, `<br/>`.
        let mut n = 1 + usize::from(chars.get(1) == Some(&'/'));
        let name = chars[n..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        if name > 0 && chars[n].is_ascii_alphabetic() {
            n += name;
            n += usize::from(chars.get(n) == Some(&'/'));
            if chars.get(n) == Some(&'>') {
                return Some((chars[..=n].iter().collect(), n + 1));
            }
        }
    }
    // HTML entities: `&amp; &lt; &gt;` become their character, others stay whole.
    if chars[0] == '&' {
        let body = chars[1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '#')
            .count();
        if body > 0 && chars.get(1 + body) == Some(&';') {
            let entity: String = chars[..2 + body].iter().collect();
            let token = match entity.as_str() {
                "&amp;" => "&".to_string(),
                "&lt;" => "<".to_string(),
                "&gt;" => ">".to_string(),
                _ => entity,
            };
            return Some((token, 2 + body));
        }
    }
    if matches!(chars[0], '<' | '>') && chars.get(1) == Some(&chars[0]) {
        return Some((chars[..2].iter().collect(), 2));
    }
    // Emoticons `:) :-( ;) =)`; their bracket is written as in the PTB.
    if matches!(chars[0], ':' | ';' | '=') {
        let nose = usize::from(chars.get(1) == Some(&'-'));
        if let Some(&b) = chars.get(1 + nose)
            && matches!(b, '(' | ')')
            && chars.len() == 2 + nose
        {
            let mut t: String = chars[..1 + nose].iter().collect();
            t.push_str(bracket(b));
            return Some((t, 2 + nose));
        }
    }
    None
}
