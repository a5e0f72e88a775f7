//! The single-photo commands: load the photo (and the region flags) before the model,
//! encode the photo once, stream each answer to stdout, and write the report files.

use std::io::{self, Write};
use std::time::Instant;

use clap::ArgMatches;
use image::DynamicImage;
use omg_cli::B;
use omg_cli::jobs::{Job, JobKind};
use omg_cli::records::RegionSpec;
use omg_llava::{
    Answer, Conversation, GenerateOptions, GroundedAnswer, ImageHandle, Pipeline, Region,
    StreamEvent, Task,
};

use crate::regions::{NamedRegion, regions_in_order};
use crate::report::{MaskMeta, Outputs, PhraseRecord, Sources, describe};
use crate::{Cli, Command, Res};

/// Reads `--image`, or decodes the built-in sample photo.
fn read_photo(cli: &Cli) -> Res<(DynamicImage, String)> {
    match &cli.image {
        Some(path) => {
            let photo = image::open(path)
                .map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
            Ok((photo, path.display().to_string()))
        }
        None => Ok((
            image::load_from_memory(omg_demo::SAMPLE_PHOTO_PNG)?,
            format!("{} (built in)", omg_demo::SAMPLE_PHOTO_NAME),
        )),
    }
}

/// Streams the answer to `task` to stdout as it is generated and returns it whole.
fn stream_answer(
    p: &Pipeline<B>,
    img: &ImageHandle<B>,
    task: &Task,
    options: &GenerateOptions,
) -> Res<Answer> {
    let mut stream = p.stream(img, task, options)?;
    let mut out = io::stdout().lock();
    for event in stream.by_ref() {
        if let StreamEvent::Text(t) = event? {
            write!(out, "{t}")?;
            out.flush()?;
        }
    }
    writeln!(out)?;
    let answer = stream.finish()?;
    for (k, m) in answer.masks.iter().enumerate() {
        writeln!(out, "  [SEG] {k}: {}", describe(m))?;
    }
    Ok(answer)
}

/// A region of the command line as a job's region spec.
fn spec(region: &Region) -> RegionSpec {
    match region {
        Region::Point { x, y } => RegionSpec::Point([*x, *y]),
        Region::Rect(b) => RegionSpec::Box(*b),
        Region::Mask(m) => RegionSpec::MaskRle(m.to_rle()),
    }
}

pub fn run_photo_command(cli: &Cli, matches: Option<&ArgMatches>) -> Res<()> {
    let (photo, image_name) = read_photo(cli)?;
    // region flags are read (and mask files checked) before the model loads
    let regions: Vec<NamedRegion> = match &cli.command {
        Command::Region { regions, .. } | Command::Interactive { regions } => {
            regions_in_order(regions, matches, &photo)?
        }
        _ => Vec::new(),
    };
    let options = cli.generation.options()?;
    let loaded = cli.model.load()?;
    let p = &loaded.pipeline;
    let t1 = Instant::now();
    let img = p.encode(&photo)?;
    eprintln!(
        "encoded {image_name} ({}×{}) in {:.2?}",
        img.width(),
        img.height(),
        t1.elapsed()
    );

    let mut out = Outputs::default();
    let ask =
        |job: &Job, out: &mut Outputs, names: &[String], labels: &[String]| -> Res<Vec<Answer>> {
            let mut answers = Vec::new();
            for task in job.tasks()? {
                let question = task.question();
                if names.is_empty() {
                    println!("> {question}");
                } else {
                    println!("> [{}] {question}", names.join("; "));
                }
                let answer = stream_answer(p, &img, &task, &options)?;
                out.add_turn(&question, names.to_vec(), &answer, labels);
                answers.push(answer);
            }
            Ok(answers)
        };
    let job = |kind: JobKind, prompt: Option<&str>, regions: &[NamedRegion]| Job {
        kind,
        prompt: prompt.map(str::to_owned),
        regions: regions.iter().map(|r| spec(&r.region)).collect(),
    };
    let name = match &cli.command {
        Command::Chat { questions } => {
            let mut conversation = Conversation::new();
            for q in questions {
                println!("> {q}");
                let task = Task::chat_after(&conversation, q.as_str());
                let answer = stream_answer(p, &img, &task, &options)?;
                conversation.record(q, &answer);
                out.add_turn(q, Vec::new(), &answer, &[]);
            }
            "chat"
        }
        Command::Caption => {
            ask(&job(JobKind::Caption, None, &[]), &mut out, &[], &[])?;
            "caption"
        }
        Command::Segment { expression } => {
            let answers = ask(
                &job(JobKind::Segment, Some(expression), &[]),
                &mut out,
                &[],
                std::slice::from_ref(expression),
            )?;
            match answers.first().and_then(|a| a.masks.first()) {
                Some(m) => println!("mask of {expression:?}: {}", describe(m)),
                None if loaded.demo => println!(
                    "the answer has no [SEG], so no mask (the demo bundle's random weights never emit it: try --force-seg 1)"
                ),
                None => println!("the answer has no [SEG], so no mask"),
            }
            "segment"
        }
        Command::Ground => {
            let mut answers = ask(&job(JobKind::Ground, None, &[]), &mut out, &[], &[])?;
            let grounded = GroundedAnswer::from(answers.remove(0));
            println!("caption: {}", grounded.caption);
            for (k, phrase) in grounded.phrases.iter().enumerate() {
                let mask = phrase.mask.as_ref().map(|_| k);
                match mask {
                    Some(i) => println!("phrase {k}: {:?} → mask {i}", phrase.phrase),
                    None => println!("phrase {k}: {:?} (no mask)", phrase.phrase),
                }
                out.phrases.push(PhraseRecord {
                    phrase: phrase.phrase.clone(),
                    mask,
                });
            }
            if out.phrases.is_empty() {
                println!("no <p>phrase</p> in the answer");
            }
            out.caption = Some(grounded.caption);
            "ground"
        }
        Command::Region { question, .. } => {
            match question {
                Some(q) => {
                    let names: Vec<String> = regions.iter().map(|r| r.name.clone()).collect();
                    ask(
                        &job(JobKind::Region, Some(q), &regions),
                        &mut out,
                        &names,
                        &[],
                    )?;
                }
                None => {
                    for r in &regions {
                        let one = job(JobKind::Region, None, std::slice::from_ref(r));
                        ask(&one, &mut out, std::slice::from_ref(&r.name), &[])?;
                    }
                }
            }
            "region"
        }
        Command::Panoptic => {
            let t = Instant::now();
            let segments = p.panoptic(&img)?;
            eprintln!("panoptic segmentation in {:.2?}", t.elapsed());
            if segments.is_empty() {
                println!("no segment");
            }
            for (k, s) in segments.into_iter().enumerate() {
                let kind = if s.is_thing { "thing" } else { "stuff" };
                println!(
                    "segment {k}: {} ({kind}, class {}): {}",
                    s.label,
                    s.class_id,
                    describe(&s.mask)
                );
                out.add_mask(
                    s.mask,
                    MaskMeta {
                        label: Some(s.label),
                        class_id: Some(s.class_id),
                        is_thing: Some(s.is_thing),
                    },
                );
            }
            "panoptic"
        }
        Command::Interactive { .. } => {
            for (k, r) in regions.iter().enumerate() {
                let m = p.segment_region(&img, &r.region)?;
                println!("prompt {k}, {}: {}", r.name, describe(&m));
                out.add_mask(
                    m,
                    MaskMeta {
                        label: Some(r.name.clone()),
                        ..MaskMeta::default()
                    },
                );
            }
            "interactive"
        }
        Command::Batch { .. } | Command::Coco { .. } | Command::Eval { .. } | Command::Prepare => {
            unreachable!("handled before a photo is read")
        }
    };
    let sources = Sources {
        bundle: &loaded.source,
        image: &image_name,
    };
    out.write(&cli.out, name, sources, &photo)
}
