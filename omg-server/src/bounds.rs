//! The checks that bound a request before any work on it ([`RequestLimits`]): lists
//! parsed with a cap on their length (so a body of `{},{},…` cannot become a list of
//! millions), text measured in characters before it is tokenized, regions counted and
//! their masks' sizes checked against the photo's header before anything is decoded.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use omg_cli::records::RegionSpec;
use serde::Deserializer;
use serde::de::{Deserialize, SeqAccess, Visitor};

use super::config::RequestLimits;
use super::error::ApiError;

thread_local! {
    /// The longest list [`capped_seq`] takes on this thread (set by [`parse_capped`]).
    static SEQ_CAP: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Whether a list went past the cap during the current parse.
    static SEQ_OVER: Cell<bool> = const { Cell::new(false) };
}

/// Parses `body` as JSON with every list read by [`capped_seq`] limited to `cap`
/// elements (the parse stops past it, before the next element is built): a 400
/// `list_too_long` then, a 400 `bad_json` naming `what` the body should be when it is
/// not that.
pub fn parse_capped<T: serde::de::DeserializeOwned>(
    body: &[u8],
    cap: usize,
    what: &str,
) -> Result<T, ApiError> {
    let before = SEQ_CAP.with(|c| c.replace(cap));
    SEQ_OVER.with(|o| o.set(false));
    let parsed = serde_json::from_slice(body);
    SEQ_CAP.with(|c| c.set(before));
    let over = SEQ_OVER.with(|o| o.replace(false));
    parsed.map_err(|e| {
        if over {
            ApiError::bad_request(
                "list_too_long",
                format!(
                    "a list of the request is longer than this server takes ({cap} elements; --max-messages, --max-regions): {e}"
                ),
            )
        } else {
            ApiError::bad_request("bad_json", format!("the request is not {what}: {e}"))
        }
    })
}

/// A `deserialize_with` for lists whose length a client chooses: at most the cap of
/// [`parse_capped`] elements.
pub fn capped_seq<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Capped<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Capped<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
            read_capped(seq)
        }
    }
    deserializer.deserialize_seq(Capped(PhantomData))
}

/// The elements of a list being parsed, at most the cap of [`parse_capped`] (for
/// visitors of types that are lists or something else).
pub fn read_capped<'de, A, T>(mut seq: A) -> Result<Vec<T>, A::Error>
where
    A: SeqAccess<'de>,
    T: Deserialize<'de>,
{
    let cap = SEQ_CAP.with(Cell::get);
    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cap).min(64));
    while let Some(item) = seq.next_element()? {
        if out.len() == cap {
            SEQ_OVER.with(|o| o.set(true));
            return Err(serde::de::Error::custom(format!(
                "a list is longer than this server's limit of {cap} elements"
            )));
        }
        out.push(item);
    }
    Ok(out)
}

/// The list cap of a request's parse under `limits`: the longest list any of them
/// allows (the lists are then counted against their own limit).
pub fn seq_cap(limits: &RequestLimits) -> usize {
    limits.max_messages.max(limits.max_regions)
}

/// Refuses more than `limits.max_messages` messages (400 `too_many_messages`).
pub fn check_messages(count: usize, limits: &RequestLimits) -> Result<(), ApiError> {
    at_most(
        count,
        limits.max_messages,
        "too_many_messages",
        "messages",
        "--max-messages",
    )
}

/// Refuses `chars` characters of text past the limit (400 `text_too_long`).
pub fn check_text(chars: usize, limits: &RequestLimits) -> Result<(), ApiError> {
    at_most(
        chars,
        limits.max_text_chars,
        "text_too_long",
        "characters of text",
        "--max-text-chars",
    )
}

/// A 400 `code` when `count` `what` are more than `limit` (set by `flag`).
fn at_most(
    count: usize,
    limit: usize,
    code: &'static str,
    what: &str,
    flag: &str,
) -> Result<(), ApiError> {
    if count > limit {
        return Err(ApiError::bad_request(
            code,
            format!("the request has {count} {what}; this server takes at most {limit} ({flag})"),
        ));
    }
    Ok(())
}

/// Refuses more regions than the limit, a mask whose declared size is not the photo's
/// `(width, height)`, and a coordinate that is not a finite number (400
/// `bad_regions`), before any mask is decoded.
pub fn check_regions(
    regions: &[RegionSpec],
    photo: (u32, u32),
    limits: &RequestLimits,
) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::bad_request("bad_regions", m);
    at_most(
        regions.len(),
        limits.max_regions,
        "bad_regions",
        "regions",
        "--max-regions",
    )?;
    let (width, height) = photo;
    for (k, r) in regions.iter().enumerate() {
        let coordinates: &[f32] = match r {
            RegionSpec::Point(p) => p,
            RegionSpec::Box(b) => b,
            RegionSpec::MaskRle(_) => &[],
        };
        if !coordinates.iter().all(|x| x.is_finite()) {
            return Err(bad(format!(
                "regions[{k}]: the coordinates {coordinates:?} are not all finite"
            )));
        }
        match r {
            RegionSpec::MaskRle(rle) if rle.size != [height, width] => {
                return Err(bad(format!(
                    "regions[{k}]: the mask is {}×{} (size [h, w] = {:?}) but the photo is {width}×{height}; a region mask has the photo's size",
                    rle.size[1], rle.size[0], rle.size
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use omg_llava::CocoRle;

    #[derive(serde::Deserialize)]
    struct Lists {
        #[serde(deserialize_with = "capped_seq")]
        items: Vec<u32>,
    }

    #[test]
    fn lists_past_the_cap_are_refused_and_the_cap_is_restored() {
        let ok: Lists = parse_capped(br#"{"items": [1, 2, 3]}"#, 3, "lists").unwrap();
        assert_eq!(ok.items, [1, 2, 3]);
        let err = parse_capped::<Lists>(br#"{"items": [1, 2, 3, 4]}"#, 3, "lists")
            .err()
            .unwrap();
        assert_eq!(err.code, "list_too_long");
        assert!(err.message.contains("3 elements"), "{}", err.message);
        assert_eq!(SEQ_CAP.with(Cell::get), usize::MAX);
        // a later parse that fails otherwise is not taken for a long list
        let err = parse_capped::<Lists>(br#"{"items": [1, "x"]}"#, 3, "lists")
            .err()
            .unwrap();
        assert_eq!(err.code, "bad_json");
        assert!(err.message.contains("not lists"), "{}", err.message);
        // a number where the list goes: the error says a list was expected
        let err = parse_capped::<Lists>(br#"{"items": 5}"#, 3, "lists")
            .err()
            .unwrap();
        assert_eq!(err.code, "bad_json");
        assert!(err.message.contains("expected a list"), "{}", err.message);
    }

    #[test]
    fn regions_are_checked_against_the_photo_and_the_limit() {
        let limits = RequestLimits {
            max_regions: 2,
            ..RequestLimits::default()
        };
        let mask = |h, w| {
            RegionSpec::MaskRle(CocoRle {
                size: [h, w],
                counts: "0".into(),
            })
        };
        assert!(check_regions(&[mask(30, 40)], (40, 30), &limits).is_ok());
        let e = check_regions(&[mask(16384, 16384)], (40, 30), &limits).unwrap_err();
        assert_eq!(e.code, "bad_regions");
        assert!(e.message.contains("16384×16384"), "{}", e.message);
        let e =
            check_regions(&[RegionSpec::Point([0.0, f32::NAN])], (40, 30), &limits).unwrap_err();
        assert!(e.message.contains("not all finite"));
        let e = check_regions(
            &[RegionSpec::Box([0.0, 0.0, f32::INFINITY, 1.0])],
            (40, 30),
            &limits,
        )
        .unwrap_err();
        assert!(e.message.contains("not all finite"));
        let three = vec![RegionSpec::Point([1.0, 1.0]); 3];
        let e = check_regions(&three, (40, 30), &limits).unwrap_err();
        assert!(e.message.contains("at most 2"));
        assert!(check_text(8192, &RequestLimits::default()).is_ok());
        assert_eq!(
            check_text(8193, &RequestLimits::default())
                .unwrap_err()
                .code,
            "text_too_long"
        );
    }
}
