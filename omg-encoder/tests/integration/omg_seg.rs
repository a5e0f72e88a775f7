//! The OMG-Seg facade and its one-entry loader: real `torch.save` files of the tiny
//! bundle (mmengine `state_dict` wrapper, bare class-embedding tensor), key coverage,
//! the open_clip backbone naming, and batch / image-size / query-count independence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor, TensorData};
use omg_checkpoint::module_loader::parameter_shapes;
use omg_checkpoint::pth::{PthFile, SINGLE_TENSOR_NAME};
use omg_checkpoint::{CheckpointError, TensorInfo, TensorSource};
use omg_encoder::loader::{BackboneNaming, backbone_key};
use omg_encoder::{
    BackboneWeights, ClassEmbedding, ConvNext, EncoderError, MaskDecoder, OmgSeg, OmgSegConfig,
    OmgSegWeights, PixelDecoder, PromptBatch, PromptEmbedding, StageHeads, load_omg_seg,
};

type B = Flex;

fn bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny")
}

fn config() -> OmgSegConfig {
    let text = std::fs::read_to_string(bundle().join("omg_llava_config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn classes() -> TensorData {
    PthFile::open(bundle().join("class_embed_tiny.pth"))
        .unwrap()
        .read(SINGLE_TENSOR_NAME)
        .unwrap()
}

/// An in-memory tensor source.
struct MapSource(BTreeMap<String, TensorData>);

impl TensorSource for MapSource {
    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.0.get(name).map(|d| TensorInfo {
            shape: d.shape.to_vec(),
            dtype: d.dtype,
        })
    }
    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        self.0
            .get(name)
            .cloned()
            .ok_or(CheckpointError::MissingKey {
                key: name.into(),
                sources: "map".into(),
            })
    }
    fn describe(&self) -> String {
        "map".into()
    }
}

fn copy_of(src: &dyn TensorSource) -> BTreeMap<String, TensorData> {
    src.names()
        .into_iter()
        .map(|n| {
            let d = src.read(&n).unwrap();
            (n, d)
        })
        .collect()
}

fn load(src: &dyn TensorSource) -> Result<(OmgSeg<B>, omg_encoder::OmgSegReport), EncoderError> {
    let weights = OmgSegWeights::detect(src, "panoptic_head.", "backbone.", None, classes())?;
    load_omg_seg::<B>(&config(), weights, &Default::default())
}

fn close<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn the_mmengine_checkpoint_loads_with_full_key_coverage() {
    let file = PthFile::open(bundle().join("omg_seg_tiny.pth")).unwrap();
    let (_, report) = load(&file).unwrap();
    // Everything is used except the CLIP trunk's unused classification head.
    assert_eq!(report.used.len() + report.ignored.len(), file.names().len());
    assert_eq!(report.ignored.len(), 5);
    assert!(
        report
            .ignored
            .iter()
            .all(|k| k.starts_with("backbone.head."))
    );
    assert!(report.foreign.is_empty());

    let mut extra = copy_of(&file);
    extra.insert(
        "panoptic_head.transformer_decoder_llm.post_norm.weight".into(),
        TensorData::new(vec![1f32; 64], [64]),
    );
    extra.insert(
        "panoptic_fusion_head.dummy".into(),
        TensorData::new(vec![0f32], [1]),
    );
    let (_, report) = load(&MapSource(extra.clone())).unwrap();
    assert_eq!(report.ignored.len(), 6);
    assert!(
        report
            .ignored
            .contains(&"panoptic_head.transformer_decoder_llm.post_norm.weight".to_string())
    );
    assert_eq!(
        report.foreign,
        vec!["panoptic_fusion_head.dummy".to_string()]
    );

    extra.insert(
        "panoptic_head.mystery.weight".into(),
        TensorData::new(vec![0f32], [1]),
    );
    let err = load(&MapSource(extra)).unwrap_err();
    assert!(
        err.to_string().contains("panoptic_head.mystery.weight"),
        "{err}"
    );

    let mut missing = copy_of(&file);
    missing.remove("panoptic_head.pos_linear.bias");
    let err = load(&MapSource(missing)).unwrap_err();
    assert!(
        err.to_string().contains("panoptic_head.pos_linear.bias"),
        "{err}"
    );
}

#[test]
fn the_open_clip_backbone_naming_gives_the_same_encoder() {
    let file = PthFile::open(bundle().join("omg_seg_tiny.pth")).unwrap();
    let all = copy_of(&file);
    let (head, backbone_only): (BTreeMap<_, _>, BTreeMap<_, _>) = all
        .into_iter()
        .partition(|(k, _)| k.starts_with("panoptic_head."));
    // Rename every backbone tensor to its open_clip name.
    let omg = BackboneNaming::OmgSeg("backbone.".into());
    let mut clip = BTreeMap::new();
    let probe = ConvNext::<B>::init(&config().backbone, &Default::default());
    for path in parameter_shapes::<B, _>(&probe).keys() {
        let from = backbone_key(&omg, path).0;
        let to = backbone_key(&BackboneNaming::OpenClipTrunk, path).0;
        clip.insert(to, backbone_only[&from].clone());
    }
    clip.insert(
        "visual.head.proj.weight".into(),
        TensorData::new(vec![0f32], [1]),
    );
    let head = MapSource(head);
    let clip = MapSource(clip);
    let weights =
        OmgSegWeights::detect(&head, "panoptic_head.", "backbone.", Some(&clip), classes())
            .unwrap();
    assert!(matches!(weights.backbone, BackboneWeights::OpenClip(_)));
    let (a, report) = load_omg_seg::<B>(&config(), weights, &Default::default()).unwrap();
    assert_eq!(report.foreign, vec!["visual.head.proj.weight".to_string()]);
    let (b, _) = load(&file).unwrap();
    let x = Tensor::<B, 4>::random(
        [1, 3, 128, 128],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    );
    let (ea, eb) = (a.encode(x.clone()).unwrap(), b.encode(x).unwrap());
    assert_eq!(close(ea.mask_features, eb.mask_features), 0.0);
    // Without any backbone source the error names the missing key.
    let err = OmgSegWeights::detect(&head, "panoptic_head.", "backbone.", None, classes())
        .err()
        .unwrap();
    assert!(err.to_string().contains("backbone.stem.0.weight"), "{err}");
}

#[test]
fn batches_sizes_and_query_counts_are_independent() {
    let file = PthFile::open(bundle().join("omg_seg_tiny.pth")).unwrap();
    let (seg, _) = load(&file).unwrap();
    let device = Default::default();
    // A non-square size (multiple of 64) and a batch of two.
    let x = Tensor::<B, 4>::random([2, 3, 128, 192], Distribution::Normal(0.0, 1.0), &device);
    let both = seg.encode(x.clone()).unwrap();
    let second = seg.encode(x.slice([1..2, 0..3, 0..128, 0..192])).unwrap();
    assert_eq!(both.mask_features.dims(), [2, 64, 32, 48]);
    let last = |e: &omg_encoder::EncodedImage<B>, i: usize| {
        let s = e
            .queries
            .stages
            .last()
            .unwrap()
            .mask_logits
            .clone()
            .unwrap();
        let [_, q, h, w] = s.dims();
        s.slice([i..i + 1, 0..q, 0..h, 0..w])
    };
    assert!(close(last(&both, 1), last(&second, 0)) < 1e-4);
    // Prompts on image 1 of the batch equal prompts on that image alone.
    let points = PromptBatch::Points {
        points: vec![(40.0, 70.0), (150.0, 20.0)],
        width: 192,
        height: 128,
    };
    let pb = seg.prompts(&both, &points, &[1, 1]).unwrap();
    let ps = seg.prompts(&second, &points, &[0, 0]).unwrap();
    assert!(
        close(
            pb.decoding.final_mask_logits(),
            ps.decoding.final_mask_logits()
        ) < 1e-4
    );
    assert!(seg.prompts(&second, &points, &[0, 1]).is_err());
    // Sizes that are not multiples of 64 are refused.
    let bad = Tensor::<B, 4>::zeros([1, 3, 96, 128], &device);
    assert!(matches!(seg.encode(bad), Err(EncoderError::Input(_))));

    // Any query count: a randomly initialised encoder with 7 queries.
    let mut cfg = config();
    cfg.mask_decoder.num_queries = 7;
    let classes = ClassEmbedding::<B>::from_ov_file(classes(), &device).unwrap();
    let small = OmgSeg {
        backbone: ConvNext::init(&cfg.backbone, &device),
        pixel_decoder: PixelDecoder::init(&cfg.pixel_decoder, &device),
        mask_decoder: MaskDecoder::init(&cfg.mask_decoder, &device),
        prompt: PromptEmbedding::init(&cfg.mask_decoder, &device),
        classes,
        config: cfg,
    };
    let e = small
        .encode(Tensor::random(
            [1, 3, 64, 128],
            Distribution::Normal(0.0, 1.0),
            &device,
        ))
        .unwrap();
    assert_eq!(e.queries.query_feat.dims(), [1, 7, 64]);
    assert_eq!(
        e.queries
            .stages
            .last()
            .unwrap()
            .cls_logits
            .as_ref()
            .unwrap()
            .dims(),
        [1, 7, 6]
    );
}

#[test]
fn full_outputs_of_the_last_stage_only_change_nothing_downstream() {
    let file = PthFile::open(bundle().join("omg_seg_tiny.pth")).unwrap();
    let (seg, _) = load(&file).unwrap();
    let device = Default::default();
    let x = Tensor::<B, 4>::random([1, 3, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    let feats = seg.backbone.forward(x);
    let pd = seg.pixel_decoder.forward(&feats);
    let levels = seg.mask_decoder.level_memory(&pd.multi_scale_memory);
    let run = |heads| {
        seg.mask_decoder
            .forward_with(&pd.mask_features, &levels, &seg.classes, heads)
    };
    let (every, last) = (run(StageHeads::Every), run(StageHeads::Last));
    assert_eq!(every.stages.len(), last.stages.len());
    let n = last.stages.len();
    for (i, (e, l)) in every.stages.iter().zip(&last.stages).enumerate() {
        let full = i == n - 1;
        assert!(e.cls_logits.is_some() && e.mask_logits.is_some() && e.iou.is_some());
        assert_eq!(l.cls_logits.is_some(), full, "stage {i}");
        assert_eq!(l.mask_logits.is_some(), full, "stage {i}");
        // the attention masks (from full-resolution logits, or computed at the level's
        // size) agree but for logits within rounding of the threshold
        let bits = |s: &omg_encoder::StagePrediction<B>| {
            s.attn_mask
                .clone()
                .int()
                .into_data()
                .iter::<i64>()
                .collect::<Vec<_>>()
        };
        let (a, b) = (bits(e), bits(l));
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(
            differ * 10_000 <= a.len(),
            "stage {i}: {differ} of {}",
            a.len()
        );
    }
    let (e, l) = (&every.stages[n - 1], &last.stages[n - 1]);
    assert!(
        close(
            e.mask_logits.clone().unwrap(),
            l.mask_logits.clone().unwrap()
        ) < 1e-4
    );
    assert!(close(e.cls_logits.clone().unwrap(), l.cls_logits.clone().unwrap()) < 1e-4);
    assert!(close(every.query_feat.clone(), last.query_feat.clone()) < 1e-4);
}
