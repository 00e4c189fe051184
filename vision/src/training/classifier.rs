//! `inspecta train classifier`: a softmax regression on the pooled features of the frozen
//! backbone (mean and max of every channel), full-batch Adam with L2. The features are
//! computed once, so training itself takes seconds; the backbone's work dominates.

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{Array1, Array2, Axis};
use serde::Serialize;

use super::{Backbone, TrainError};
use crate::model::familiarity::{Familiarity, FamiliarityReport};
use crate::model::head::{LinearHead, pooled_features};

#[derive(Debug, Clone)]
pub struct ClassifierOptions {
    pub steps: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the bias).
    pub l2: f32,
    pub threads: usize,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        Self {
            steps: 500,
            learning_rate: 0.05,
            l2: 1e-3,
            threads: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassifierReport {
    pub images: usize,
    pub unreadable: usize,
    pub per_class: Vec<(String, usize)>,
    pub features: usize,
    pub train_accuracy: f64,
    pub final_loss: f32,
    pub extract_seconds: f64,
    pub fit_seconds: f64,
    pub familiarity: FamiliarityReport,
}

#[derive(Debug)]
pub struct Classifier {
    pub labels: Vec<String>,
    pub head: LinearHead,
    pub familiarity: Familiarity,
    pub report: ClassifierReport,
}

/// `samples`: (image, class index into `labels`).
pub fn train(
    backbone: &Backbone,
    labels: Vec<String>,
    samples: &[(PathBuf, usize)],
    options: &ClassifierOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Classifier, TrainError> {
    let started = Instant::now();
    let paths: Vec<PathBuf> = samples.iter().map(|(p, _)| p.clone()).collect();
    let pooled = backbone.extract(&paths, options.threads, progress, pooled_features)?;
    let extract_seconds = started.elapsed().as_secs_f64();
    let unreadable = pooled.iter().filter(|p| p.is_none()).count();
    let rows: Vec<(Array1<f32>, usize)> = pooled
        .into_iter()
        .zip(samples)
        .filter_map(|(f, (_, class))| f.map(|f| (f, *class)))
        .collect();
    let per_class: Vec<(String, usize)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), rows.iter().filter(|(_, c)| *c == i).count()))
        .collect();
    if let Some((label, _)) = per_class.iter().find(|(_, n)| *n == 0) {
        return Err(TrainError::Data {
            what: format!("class {label:?}"),
            reason: "has no readable image".into(),
        });
    }
    let dim = rows.first().map_or(0, |(f, _)| f.len());
    let mut x = Array2::zeros((rows.len(), dim));
    for (mut row, (f, _)) in x.rows_mut().into_iter().zip(&rows) {
        row.assign(f);
    }
    let classes: Vec<usize> = rows.iter().map(|(_, c)| *c).collect();
    let fit_started = Instant::now();
    let (familiarity, familiarity_report) =
        Familiarity::fit(&x.view(), &classes).map_err(|reason| TrainError::Data {
            what: "the training images".into(),
            reason,
        })?;
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(dim));
    let inv_std = x
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-6 { 1.0 / s } else { 1.0 });
    for mut row in x.rows_mut() {
        row -= &mean;
        row *= &inv_std;
    }
    let (weights, bias, final_loss) = fit(&x, &classes, labels.len(), options);
    let head = LinearHead {
        mean,
        inv_std,
        weights,
        bias,
    };
    let logits = x.dot(&head.weights.t()) + &head.bias;
    let correct = logits
        .rows()
        .into_iter()
        .zip(&classes)
        .filter(|(l, c)| argmax(l.iter()) == **c)
        .count();
    Ok(Classifier {
        labels,
        report: ClassifierReport {
            images: samples.len(),
            unreadable,
            per_class,
            features: dim,
            train_accuracy: correct as f64 / rows.len() as f64,
            final_loss,
            extract_seconds,
            fit_seconds: fit_started.elapsed().as_secs_f64(),
            familiarity: familiarity_report,
        },
        head,
        familiarity,
    })
}

/// Full-batch Adam on mean cross-entropy + `l2`/2 |W|^2. Returns (W, b, last loss).
fn fit(
    x: &Array2<f32>,
    classes: &[usize],
    labels: usize,
    options: &ClassifierOptions,
) -> (Array2<f32>, Array1<f32>, f32) {
    let (n, d) = x.dim();
    let mut w = Array2::<f32>::zeros((labels, d));
    let mut b = Array1::<f32>::zeros(labels);
    let mut adam_w = Adam::new(w.len());
    let mut adam_b = Adam::new(labels);
    let mut loss = f32::NAN;
    for _ in 0..options.steps {
        let mut p = x.dot(&w.t()) + &b; // [n, labels] logits -> probabilities
        loss = 0.0;
        for (mut row, &class) in p.rows_mut().into_iter().zip(classes) {
            let max = row.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
            loss -= row[class].max(1e-12).ln();
            row[class] -= 1.0;
        }
        loss = loss / n as f32 + 0.5 * options.l2 * w.iter().map(|v| v * v).sum::<f32>();
        p /= n as f32;
        let grad_w = p.t().dot(x) + &(&w * options.l2);
        let grad_b = p.sum_axis(Axis(0));
        adam_w.step(
            w.as_slice_mut().into_iter().flatten(),
            grad_w.iter(),
            options.learning_rate,
        );
        adam_b.step(b.iter_mut(), grad_b.iter(), options.learning_rate);
    }
    (w, b, loss)
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }

    fn step<'a>(
        &mut self,
        params: impl Iterator<Item = &'a mut f32>,
        grads: impl Iterator<Item = &'a f32>,
        rate: f32,
    ) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for (((p, g), m), v) in params.zip(grads).zip(&mut self.m).zip(&mut self.v) {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= rate * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}

fn argmax<'a>(values: impl Iterator<Item = &'a f32>) -> usize {
    values
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn separable_classes_are_learned() {
        let x = array![
            [2.0f32, 0.0],
            [1.5, 0.2],
            [0.0, 2.0],
            [0.1, 1.8],
            [-2.0, -2.0],
            [-1.5, -1.9]
        ];
        let classes = [0, 0, 1, 1, 2, 2];
        let (w, b, loss) = fit(&x, &classes, 3, &ClassifierOptions::default());
        let logits = x.dot(&w.t()) + &b;
        let predicted: Vec<usize> = logits
            .rows()
            .into_iter()
            .map(|r| argmax(r.iter()))
            .collect();
        assert_eq!(predicted, classes);
        assert!(loss < 0.2, "loss {loss}");
    }
}
