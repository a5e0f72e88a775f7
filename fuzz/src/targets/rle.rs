//! COCO RLE decoding: a size and a counts string from the input; what decodes must
//! agree with the runs and re-encode to the same mask.

use omg_masks::{BinaryMask, CocoRle, area_from_rle, decode_counts};

/// The `rle` target: runs on any bytes, panics only if a check fails.
pub fn rle(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let height = u32::from(u16::from_le_bytes([data[0], data[1]]));
    let width = u32::from(u16::from_le_bytes([data[2], data[3]]));
    let Ok(counts) = std::str::from_utf8(&data[4..]) else {
        return;
    };
    let _ = decode_counts(counts);
    // Sizes far past the limit, from the same bytes: the check must come first.
    let huge = CocoRle {
        size: [height << 16 | width, width << 16 | height],
        counts: counts.to_owned(),
    };
    let _ = BinaryMask::from_rle(&huge);
    let rle = CocoRle {
        size: [height, width],
        counts: counts.to_owned(),
    };
    if let Ok(mask) = BinaryMask::from_rle(&rle) {
        assert_eq!(
            area_from_rle(&rle).expect("area of a decodable RLE"),
            mask.area()
        );
        let again = BinaryMask::from_rle(&mask.to_rle()).expect("a re-encoded mask decodes");
        assert_eq!(again, mask);
    }
}
