//! The questions the official evaluations send per benchmark, and the answer
//! post-processing their scorers apply, as plain text functions.
//!
//! Every question goes to the model as one user turn `"<image>\n" + question`
//! ([`user_turn`]), wrapped in the model's chat template, answered greedily.
//!
//! * **RefCOCO / RefCOCO+ / RefCOCOg** (official OMG-LLaVA evaluation):
//!   `"Please segment {sent} in this image."` for each sentence; the mask of the first
//!   `[SEG]` token of the answer is scored, no text post-processing.
//! * **GCG** (official OMG-LLaVA evaluation): the six [`GCG_QUESTIONS`] are tried in
//!   order until an answer has at least one `[SEG]`; the answer is turned into a
//!   caption and phrases by [`gcg_postprocess`].
//! * **Region captioning** (official OMG-LLaVA evaluation): [`REGION_CAPTION_QUESTION`],
//!   with the region's mask as the `<mark>` visual prompt (the model places the mark
//!   at the mask's distance-transform centre); the answer is cleaned by
//!   [`region_caption_postprocess`].
//! * **ReasonSeg**: the official OMG-LLaVA code has no ReasonSeg evaluation; LISA's
//!   (the benchmark's authors) asks [`reasonseg_question`], and scores the first mask.

/// The image placeholder of the official prompts.
pub const IMAGE_TOKEN: &str = "<image>";

/// The user turn of the official evaluations: `"<image>\n" + question`.
pub fn user_turn(question: &str) -> String {
    format!("{IMAGE_TOKEN}\n{question}")
}

/// The RefCOCO-family question for one sentence: `"Please segment {sentence} in this
/// image."`.
pub fn refcoco_question(sentence: &str) -> String {
    format!("Please segment {sentence} in this image.")
}

/// The GCG questions, tried in this order until an answer contains a `[SEG]` token
/// (the last answer is kept if none does).
pub const GCG_QUESTIONS: [&str; 6] = [
    "Could you please give me a detailed description of the image? Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
    "Can you provide a thorough description of the this image? Please output with interleaved segmentation masks for the corresponding phrases.",
    "Please describe in detail the contents of the image. Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
    "Could you give a comprehensive explanation of what can be found within this picture? Please output with interleaved segmentation masks for the corresponding phrases.",
    "Could you give me an elaborate explanation of this picture? Please respond with interleaved segmentation masks for the corresponding phrases.",
    "Could you provide me with a detailed analysis of this photo? Please output with interleaved segmentation masks for the corresponding parts of the answer.",
];

/// The region-captioning question; `<mark>` is replaced by the region's visual prompt.
pub const REGION_CAPTION_QUESTION: &str = "Can you provide me with a detailed description of the region in the picture marked by region1 <mark>?";

/// The ReasonSeg question of LISA's evaluation: `"{query} Please output segmentation
/// mask."` for a sentence query, `"What is {query} in this image? Please output
/// segmentation mask."` for a phrase. (LISA's user turn puts a space after the
/// newline: `"<image>\n " + question`.)
pub fn reasonseg_question(query: &str, is_sentence: bool) -> String {
    let q = query.trim();
    if is_sentence {
        format!("{q} Please output segmentation mask.")
    } else {
        format!("What is {q} in this image? Please output segmentation mask.")
    }
}

/// A GCG answer as the scorer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcgAnswer {
    /// The caption: the answer without tags, `[SEG]` tokens and extra spaces.
    pub caption: String,
    /// The phrases between `<p>` and `</p>`, trimmed, in order.
    pub phrases: Vec<String>,
}

/// Removes every `<...>` (shortest match, not across a newline), as Python's
/// `re.sub(r'<.*?>', '', s)`.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(['>', '\n']) {
            Some(j) if after.as_bytes()[j] == b'>' => rest = &after[j + 1..],
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The groups of Python's `re.findall(r'<p>(.*?)<\/p>', s)`.
fn phrases_of(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("<p>") {
        let after = &rest[i + 3..];
        let end = after.find("</p>");
        let nl = after.find('\n');
        match end {
            Some(j) if nl.is_none_or(|n| n > j) => {
                out.push(after[..j].to_string());
                rest = &after[j + 4..];
            }
            _ => rest = &rest[i + 1..],
        }
    }
    out
}

/// `' '.join(s.split()).strip("'").strip()`.
fn squeeze(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_matches('\'').trim().to_string()
}

/// The text after the last `"ASSISTANT: "` (all of it if there is none), as
/// `s.split("ASSISTANT: ")[-1]`.
fn after_assistant(s: &str) -> &str {
    s.rsplit("ASSISTANT: ").next().unwrap_or(s)
}

/// The official GCG post-processing of a decoded answer (special tokens kept): remove
/// `<s>` and newlines, replace double spaces by one, keep the text after the last
/// `"ASSISTANT: "`, take the `<p>...</p>` phrases, then drop every tag and `[SEG]`
/// and squeeze the whitespace (stripping `'` at both ends).
pub fn gcg_postprocess(answer: &str) -> GcgAnswer {
    let text = answer
        .replace("<s>", "")
        .replace('\n', "")
        .replace("  ", " ");
    let text = after_assistant(&text);
    let phrases = phrases_of(text)
        .into_iter()
        .map(|p| p.trim().to_string())
        .collect();
    let cleaned = strip_tags(text).replace("[SEG]", "");
    GcgAnswer {
        caption: squeeze(&cleaned),
        phrases,
    }
}

/// The official region-caption post-processing of a decoded answer (special tokens
/// skipped): remove `<s>`, newlines, `region1`, `Region1` and `:`, replace triple then
/// double spaces by one, keep the text after the last `"ASSISTANT: "` (which, its
/// colon removed, never matches: the official code does the same), drop tags and
/// `[SEG]`, squeeze the whitespace (stripping `'` at both ends).
pub fn region_caption_postprocess(answer: &str) -> String {
    let text = answer
        .replace("<s>", "")
        .replace('\n', "")
        .replace("region1", "")
        .replace("Region1", "")
        .replace(':', "")
        .replace("   ", " ")
        .replace("  ", " ");
    let text = after_assistant(&text);
    squeeze(&strip_tags(text).replace("[SEG]", ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions() {
        assert_eq!(
            refcoco_question("man in red"),
            "Please segment man in red in this image."
        );
        assert_eq!(user_turn("Q?"), "<image>\nQ?");
        assert_eq!(
            reasonseg_question("the thing used to cut", false),
            "What is the thing used to cut in this image? Please output segmentation mask."
        );
        assert_eq!(
            reasonseg_question(" Where would I sit? ", true),
            "Where would I sit? Please output segmentation mask."
        );
    }

    #[test]
    fn gcg_answer() {
        let a = gcg_postprocess(
            "<s> ASSISTANT: A <p>man</p> [SEG] rides\n a <p> red bike </p> [SEG].<|im_end|>",
        );
        assert_eq!(a.phrases, vec!["man", "red bike"]);
        assert_eq!(a.caption, "A man rides a red bike .");
        let b = gcg_postprocess("'<p>dog</p>' 1 < 2");
        assert_eq!(b.phrases, vec!["dog"]);
        assert_eq!(b.caption, "dog' 1 < 2");
    }

    #[test]
    fn region_answer() {
        assert_eq!(
            region_caption_postprocess("Region1: A man  in a hat.\n[SEG]"),
            "A man in a hat."
        );
        // The official code removes every ':' before it splits at "ASSISTANT: ", so
        // that split never applies.
        assert_eq!(
            region_caption_postprocess("x ASSISTANT: <b>y</b>"),
            "x ASSISTANT y"
        );
    }

    #[test]
    fn regex_equivalents() {
        assert_eq!(strip_tags("a<b>c<d\n>e<f"), "ac<d\n>e<f");
        assert_eq!(phrases_of("<p>a</p><p>b\n</p><p>c</p>"), vec!["a", "c"]);
    }
}
