//! The bad-input battery, through the public API a user calls: corrupt, truncated and
//! mismatched bundle files, non-finite weights, odd pictures, region and placeholder
//! mistakes, over-long prompts and mask pictures. Each case asserts the error variant
//! (or, for inputs that are fine, a property of the result).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use image::{DynamicImage, ImageBuffer, Luma, Rgb, Rgba};
use omg_checkpoint::CheckpointError;
use omg_llava::{
    BinaryMask, GenerateOptions, LoadOptions, MaskOutput, OmgLlavaError, PanopticSegment, Pipeline,
    Region, Task,
};
use omg_masks::MaskError;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

type B = Flex;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny")
}

/// A copy of the tiny bundle to damage.
fn bundle_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny()).unwrap() {
        let path = entry.unwrap().path();
        let to = dir.path().join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir(&to).unwrap();
            for f in std::fs::read_dir(&path).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            }
        } else {
            std::fs::copy(&path, &to).unwrap();
        }
    }
    dir
}

fn load(dir: &Path, options: LoadOptions) -> Result<Pipeline<B>, OmgLlavaError> {
    Pipeline::<B>::from_dir(dir, &options, Default::default(), |_| {})
}

/// The checkpoint error inside a load error, whichever stage raised it.
fn checkpoint_error(e: &OmgLlavaError) -> Option<&CheckpointError> {
    match e {
        OmgLlavaError::Checkpoint(c) => Some(c),
        OmgLlavaError::Llm(omg_llm::LlmError::Checkpoint(c)) => Some(c),
        OmgLlavaError::Encoder(omg_encoder::EncoderError::Checkpoint(c)) => Some(c),
        OmgLlavaError::Projector(omg_projector::ProjectorError::Checkpoint(c)) => Some(c),
        OmgLlavaError::Decoder(omg_decoder::DecoderError::Checkpoint(c)) => Some(c),
        _ => None,
    }
}

fn load_error(dir: &Path, options: LoadOptions) -> OmgLlavaError {
    match load(dir, options) {
        Ok(_) => panic!("the damaged bundle in {} loaded", dir.display()),
        Err(e) => e,
    }
}

fn assert_format(e: &OmgLlavaError, file: &str, words: &str) {
    match checkpoint_error(e) {
        Some(CheckpointError::Format { path, message }) => {
            assert!(path.ends_with(file), "{}", path.display());
            assert!(message.contains(words), "{message}");
        }
        _ => panic!("not a format error: {e}"),
    }
}

#[test]
fn empty_truncated_garbage_and_flipped_checkpoints_are_format_errors() {
    let dir = bundle_copy();
    let release = dir.path().join("omg_llava_tiny.pth");
    let seg = dir.path().join("omg_seg_tiny.pth");
    let llm = dir.path().join("internlm2/model.safetensors");
    let original =
        |p: &Path| std::fs::read(tiny().join(p.strip_prefix(dir.path()).unwrap())).unwrap();

    std::fs::write(&release, b"").unwrap();
    assert_format(
        &load_error(dir.path(), LoadOptions::default()),
        "omg_llava_tiny.pth",
        "empty",
    );
    std::fs::write(&release, original(&release)).unwrap();

    let bytes = original(&seg);
    std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
    assert_format(
        &load_error(dir.path(), LoadOptions::default()),
        "omg_seg_tiny.pth",
        "not a readable zip archive",
    );
    std::fs::write(&seg, &bytes).unwrap();

    // 4 KiB of noise (a fixed generator) where the LLM weights should be.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&llm, &noise).unwrap();
    assert_format(
        &load_error(dir.path(), LoadOptions::default()),
        "model.safetensors",
        "header",
    );
    std::fs::write(&llm, original(&llm)).unwrap();

    // 64 bytes flipped in the middle of the release: the record's CRC-32 catches it.
    let mut bytes = original(&release);
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b = !*b;
    }
    std::fs::write(&release, &bytes).unwrap();
    assert_format(
        &load_error(dir.path(), LoadOptions::default()),
        "omg_llava_tiny.pth",
        "CRC",
    );
    std::fs::write(&release, original(&release)).unwrap();

    assert!(
        load(dir.path(), LoadOptions::default()).is_ok(),
        "the restored copy loads"
    );
}

/// The tiny LLM's tensors, to write back changed.
fn llm_tensors() -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(tiny().join("internlm2/model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect()
}

fn write_llm(dir: &Path, tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("internlm2/model.safetensors")).unwrap();
}

#[test]
fn missing_misshaped_mistyped_and_extra_weights_are_named() {
    let dir = bundle_copy();
    let all = llm_tensors();
    let key = "model.norm.weight";

    let without: Vec<_> = all.iter().filter(|t| t.0 != key).cloned().collect();
    write_llm(dir.path(), &without);
    match checkpoint_error(&load_error(dir.path(), LoadOptions::default())) {
        Some(CheckpointError::MissingKey { key: k, .. }) => assert_eq!(k, key),
        other => panic!("{other:?}"),
    }

    let mut misshaped = all.clone();
    let t = misshaped.iter_mut().find(|t| t.0 == key).unwrap();
    t.2 = vec![t.2[0] / 2, 2];
    write_llm(dir.path(), &misshaped);
    match checkpoint_error(&load_error(dir.path(), LoadOptions::default())) {
        Some(CheckpointError::ShapeMismatch {
            key: k,
            expected,
            found,
        }) => {
            assert_eq!(k, key);
            assert_eq!((expected.as_slice(), found.len()), (&[64][..], 2));
        }
        other => panic!("{other:?}"),
    }

    let mut mistyped = all.clone();
    let t = mistyped.iter_mut().find(|t| t.0 == key).unwrap();
    t.1 = safetensors::Dtype::I32;
    write_llm(dir.path(), &mistyped);
    match checkpoint_error(&load_error(dir.path(), LoadOptions::default())) {
        Some(CheckpointError::UnsupportedDType { key: k, dtype }) => {
            assert_eq!(k, key);
            assert!(dtype.contains("I32"), "{dtype}");
        }
        other => panic!("{other:?}"),
    }

    let mut extra = all.clone();
    extra.push((
        "model.layers.0.extra.weight".into(),
        safetensors::Dtype::F32,
        vec![1],
        vec![0; 4],
    ));
    write_llm(dir.path(), &extra);
    match checkpoint_error(&load_error(dir.path(), LoadOptions::default())) {
        Some(CheckpointError::UnexpectedKey { key: k, .. }) => {
            assert_eq!(k, "model.layers.0.extra.weight")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_config_that_does_not_match_the_weights_is_a_shape_error() {
    let dir = bundle_copy();
    let path = dir.path().join("internlm2/config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"intermediate_size\": 176", "\"intermediate_size\": 180"),
    )
    .unwrap();
    match checkpoint_error(&load_error(dir.path(), LoadOptions::default())) {
        Some(CheckpointError::ShapeMismatch {
            expected, found, ..
        }) => {
            assert!(
                expected.contains(&180) && found.contains(&176),
                "{expected:?} {found:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_inconsistent_or_broken_bundle_configuration_is_typed() {
    let dir = bundle_copy();
    let path = dir.path().join("omg_llava_config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"query_dim\": 128", "\"query_dim\": 96", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    match load_error(dir.path(), LoadOptions::default()) {
        OmgLlavaError::InconsistentConfig {
            field: "text2vision.query_dim",
            found: 96,
            expected: 128,
            ..
        } => {}
        other => panic!("{other}"),
    }
    let edited = text.replacen("\"num_stuff\": 2", "\"num_stuff\": 3", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    match load_error(dir.path(), LoadOptions::default()) {
        OmgLlavaError::InconsistentConfig {
            found: 6,
            expected: 5,
            ..
        } => {}
        other => panic!("{other}"),
    }
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    match load_error(dir.path(), LoadOptions::default()) {
        OmgLlavaError::InvalidConfigFile { path: p, .. } => assert_eq!(p, path),
        other => panic!("{other}"),
    }
}

#[test]
fn non_finite_weights_fail_only_with_the_check() {
    let dir = bundle_copy();
    let mut all = llm_tensors();
    let key = "model.layers.1.attention_norm.weight";
    let t = all.iter_mut().find(|t| t.0 == key).unwrap();
    assert_eq!(t.1, safetensors::Dtype::F32);
    t.3[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    write_llm(dir.path(), &all);
    // Off by default: the file is well-formed, so it loads.
    assert!(load(dir.path(), LoadOptions::default()).is_ok());
    let checked = LoadOptions::default().with_check_finite(true);
    match checkpoint_error(&load_error(dir.path(), checked)) {
        Some(CheckpointError::NonFinite {
            key: k,
            index,
            value,
            ..
        }) => {
            assert_eq!((k.as_str(), *index), (key, 3));
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
    // The intact bundle passes the check.
    assert!(load(&tiny(), checked).is_ok());
}

fn pipeline() -> Pipeline<B> {
    load(&tiny(), LoadOptions::default()).expect("the tiny bundle loads")
}

/// What the pipeline makes of a picture: its number of visual tokens, a forced-`[SEG]`
/// answer (ids, mask and score, which depend on every visual token through the LLM)
/// and the panoptic segments (masks and class scores). The visual tokens themselves are
/// private; two pictures with the same fingerprint, compared exactly, were encoded
/// alike.
type Fingerprint = (usize, Vec<u32>, Vec<MaskOutput>, Vec<PanopticSegment>);

fn tokens(p: &Pipeline<B>, img: &DynamicImage) -> Fingerprint {
    let handle = p.encode(img).unwrap();
    let options = GenerateOptions::default()
        .with_max_new_tokens(3)
        .with_forced_seg(0);
    let answer = p
        .run(&handle, &Task::chat("What is it?"), &options)
        .unwrap();
    assert_eq!(answer.masks.len(), 1);
    (
        handle.visual_token_count(),
        answer.token_ids,
        answer.masks,
        p.panoptic(&handle).unwrap(),
    )
}

#[test]
fn grayscale_rgba_and_16_bit_pictures_encode_as_their_rgb_pixels() {
    let p = pipeline();
    let (w, h) = (37, 23);
    let value = |x: u32, y: u32, c: u32| ((x * 7 + y * 13 + c * 50) % 256) as u8;
    let rgb = ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([value(x, y, 0), value(x, y, 1), value(x, y, 2)])
    });
    let reference = tokens(&p, &DynamicImage::ImageRgb8(rgb.clone()));
    // RGBA, opaque.
    let rgba = ImageBuffer::from_fn(w, h, |x, y| {
        let Rgb([r, g, b]) = *rgb.get_pixel(x, y);
        Rgba([r, g, b, 255])
    });
    assert_eq!(tokens(&p, &DynamicImage::ImageRgba8(rgba)), reference);
    // 16 bits a channel, the same values scaled by 257.
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(w, h, |x, y| {
        Rgb(rgb.get_pixel(x, y).0.map(|v| u16::from(v) * 257))
    });
    assert_eq!(tokens(&p, &DynamicImage::ImageRgb16(rgb16)), reference);
    // Grayscale: the same as its grey RGB.
    let gray = ImageBuffer::from_fn(w, h, |x, y| Luma([value(x, y, 0)]));
    let gray_rgb = ImageBuffer::from_fn(w, h, |x, y| {
        let v = value(x, y, 0);
        Rgb([v, v, v])
    });
    assert_eq!(
        tokens(&p, &DynamicImage::ImageLuma8(gray)),
        tokens(&p, &DynamicImage::ImageRgb8(gray_rgb))
    );
}

#[test]
fn a_one_pixel_picture_answers_in_its_own_frame() {
    let p = pipeline();
    let img = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(1, 1, Rgb([200, 30, 30])));
    let handle = p.encode(&img).unwrap();
    let mask = p.segment_region(&handle, &Region::point(0.5, 0.5)).unwrap();
    assert_eq!((mask.mask().width(), mask.mask().height()), (1, 1));
    assert!(matches!(
        p.segment_region(&handle, &Region::point(1.0, 0.5)),
        Err(OmgLlavaError::PointOutside { .. })
    ));
    let zero = DynamicImage::new_rgb8(1, 0);
    assert!(matches!(p.encode(&zero), Err(OmgLlavaError::Image(_))));
}

#[test]
fn more_regions_than_placeholders_and_the_reverse() {
    let p = pipeline();
    let handle = p.encode(&DynamicImage::new_rgb8(40, 30)).unwrap();
    let options = GenerateOptions::default().with_max_new_tokens(2);
    let boxes = [
        Region::rect(1.0, 1.0, 10.0, 10.0),
        Region::rect(5.0, 5.0, 20.0, 20.0),
    ];
    let mismatch = |regions: &[Region], question: &str| match p
        .ask_regions(&handle, regions, question, &options)
    {
        Err(OmgLlavaError::PlaceholderMismatch {
            region_placeholders,
            regions_given,
            ..
        }) => (region_placeholders, regions_given),
        other => panic!("{question}: {:?}", other.map(|a| a.text)),
    };
    assert_eq!(mismatch(&boxes, "What is <region>?"), (1, 2));
    assert_eq!(mismatch(&boxes[..1], "Is <region> like <region>?"), (2, 1));
    assert!(
        p.ask_regions(&handle, &boxes, "Is <region> like <region>?", &options)
            .is_ok()
    );
}

#[test]
fn a_question_longer_than_the_context_is_a_typed_error() {
    let p = pipeline();
    let handle = p.encode(&DynamicImage::new_rgb8(16, 16)).unwrap();
    let limit = p.max_positions();
    let question = "cat ".repeat(limit);
    match p.segment(
        &handle,
        &question,
        &GenerateOptions::default().with_max_new_tokens(1),
    ) {
        Err(OmgLlavaError::PromptTooLong {
            prompt_tokens,
            max_new_tokens: 1,
            limit: l,
        }) => assert!(prompt_tokens > limit && l == limit),
        other => panic!("{:?}", other.map(|s| s.answer.text)),
    }
}

/// A PNG with the given header fields and rows (filter byte added), made by hand.
fn png(width: u32, height: u32, color_type: u8, depth: u8, rows: &[Vec<u8>]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([depth, color_type, 0, 0, 0]);
    let raw: Vec<u8> = rows
        .iter()
        .flat_map(|r| std::iter::once(0).chain(r.iter().copied()))
        .collect();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &miniz_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A zlib stream of stored (uncompressed) blocks.
fn miniz_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        out.extend((c.len() as u16).to_le_bytes());
        out.extend((!(c.len() as u16)).to_le_bytes());
        out.extend(*c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

#[test]
fn mask_pictures_of_every_kind_and_their_failures() {
    let limit = omg_masks::DEFAULT_DECODE_PIXELS;
    // 8-bit grayscale: non-zero is inside.
    let m = BinaryMask::from_image_bytes(&png(3, 1, 0, 8, &[vec![0, 255, 1]]), limit).unwrap();
    assert_eq!(
        m.array().iter().copied().collect::<Vec<_>>(),
        [false, true, true]
    );
    // 16-bit grayscale: a value of 1 (which an 8-bit conversion would round to 0) is inside.
    let m = BinaryMask::from_image_bytes(&png(2, 1, 0, 16, &[vec![0, 1, 0, 0]]), limit).unwrap();
    assert_eq!(m.array().iter().copied().collect::<Vec<_>>(), [true, false]);
    // RGBA: a transparent red pixel is outside, an opaque blue one inside.
    let m = BinaryMask::from_image_bytes(
        &png(2, 1, 6, 8, &[vec![255, 0, 0, 0, 0, 0, 255, 255]]),
        limit,
    )
    .unwrap();
    assert_eq!(m.array().iter().copied().collect::<Vec<_>>(), [false, true]);
    // Truncated, garbage, empty.
    let good = png(2, 2, 0, 8, &[vec![1, 0], vec![0, 1]]);
    for bad in [
        &good[..good.len() - 20],
        b"not a picture at all".as_slice(),
        &[],
    ] {
        assert!(matches!(
            BinaryMask::from_image_bytes(bad, limit),
            Err(MaskError::Image(_))
        ));
    }
    // A header declaring 100000 × 100000 pixels is refused before any pixel is decoded.
    let huge = png(100_000, 100_000, 0, 8, &[vec![0; 4]]);
    match BinaryMask::from_image_bytes(&huge, limit) {
        Err(MaskError::ExceedsLimit {
            height: 100_000,
            width: 100_000,
            max_pixels,
        }) => {
            assert_eq!(max_pixels, limit)
        }
        other => panic!("{other:?}"),
    }
    // The same bound on RLE: a few bytes declaring 2^31 pixels.
    let rle = omg_llava::CocoRle {
        size: [1 << 16, 1 << 15],
        counts: "0".into(),
    };
    assert!(matches!(
        BinaryMask::from_rle(&rle),
        Err(MaskError::ExceedsLimit { .. })
    ));
}
