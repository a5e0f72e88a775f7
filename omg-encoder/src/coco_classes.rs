//! The 133 COCO-panoptic class names in the order OMG-Seg's classifier uses: the 80 "thing" classes,
//! then the 53 "stuff" classes.
//!
//! The order (and the names) are those of mmdet 3.1.0's `CocoPanopticDataset.METAINFO["classes"]`
//! (`mmdet/datasets/coco_panoptic.py`, equal to `thing_classes + stuff_classes`). OMG-Seg's
//! open-vocabulary dataset (`seg/datasets/coco_ov.py`, `CocoPanopticOVDataset`, whose embeddings
//! `convnext_large_d_320_CocoPanopticOVDataset.pth` OMG-LLaVA loads) lists the same 133 classes in the
//! same order but as comma-separated synonym prompts (`"person,child,girl,..."`, `"wall,walls"` for
//! `wall-other-merged`, ...); this table keeps the plain panoptic names. Class index `i` of the
//! classifier's logits (`cls_logits[.., i]` for `i < 133`; column 133 is the background) is
//! `COCO_PANOPTIC_CLASSES[i]`.

/// Number of "thing" (countable object) classes: indices `0..80`.
pub const NUM_THINGS: usize = 80;

/// Number of "stuff" (amorphous region) classes: indices `80..133`.
pub const NUM_STUFF: usize = 53;

/// Number of classes, `NUM_THINGS + NUM_STUFF` (the background column of the logits is index 133).
pub const NUM_CLASSES: usize = NUM_THINGS + NUM_STUFF;

/// The COCO-panoptic class names, things (`0..80`) then stuff (`80..133`).
pub const COCO_PANOPTIC_CLASSES: [&str; NUM_CLASSES] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
    "banner",
    "blanket",
    "bridge",
    "cardboard",
    "counter",
    "curtain",
    "door-stuff",
    "floor-wood",
    "flower",
    "fruit",
    "gravel",
    "house",
    "light",
    "mirror-stuff",
    "net",
    "pillow",
    "platform",
    "playingfield",
    "railroad",
    "river",
    "road",
    "roof",
    "sand",
    "sea",
    "shelf",
    "snow",
    "stairs",
    "tent",
    "towel",
    "wall-brick",
    "wall-stone",
    "wall-tile",
    "wall-wood",
    "water-other",
    "window-blind",
    "window-other",
    "tree-merged",
    "fence-merged",
    "ceiling-merged",
    "sky-other-merged",
    "cabinet-merged",
    "table-merged",
    "floor-other-merged",
    "pavement-merged",
    "mountain-merged",
    "grass-merged",
    "dirt-merged",
    "paper-merged",
    "food-other-merged",
    "building-other-merged",
    "rock-merged",
    "wall-other-merged",
    "rug-merged",
];

/// Whether class `id` is a COCO "thing" (`id < 80`). Stuff ids (`80..133`) and ids out of range
/// (including the background index 133) are not things.
pub fn is_thing(id: usize) -> bool {
    id < NUM_THINGS
}

/// Whether class `id` is a COCO "stuff" class (`80 <= id < 133`).
pub fn is_stuff(id: usize) -> bool {
    (NUM_THINGS..NUM_CLASSES).contains(&id)
}

/// The name of class `id`, or `None` when `id >= 133`.
pub fn class_name(id: usize) -> Option<&'static str> {
    COCO_PANOPTIC_CLASSES.get(id).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_boundaries() {
        assert_eq!(COCO_PANOPTIC_CLASSES.len(), 133);
        assert_eq!(COCO_PANOPTIC_CLASSES[0], "person");
        assert_eq!(COCO_PANOPTIC_CLASSES[79], "toothbrush");
        assert_eq!(COCO_PANOPTIC_CLASSES[80], "banner");
        assert_eq!(COCO_PANOPTIC_CLASSES[131], "wall-other-merged");
        assert_eq!(COCO_PANOPTIC_CLASSES[132], "rug-merged");
        assert!(is_thing(0) && is_thing(79) && !is_thing(80) && !is_thing(133));
        assert!(!is_stuff(79) && is_stuff(80) && is_stuff(132) && !is_stuff(133));
        assert_eq!(class_name(133), None);
        let mut names = COCO_PANOPTIC_CLASSES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 133, "names are unique");
    }
}
