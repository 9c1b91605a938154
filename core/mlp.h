/*
 * mlp.h — the discriminator MLP and its cross-entropy loss (internal).
 *
 * Linear(in,H) – ReLU – Linear(H,H) – ReLU – Linear(H,C), weights stored as
 * PyTorch stores them: W (out, in) row-major. As in llm.c, the parameters of
 * one MLP are one contiguous float block carved into named views, and the
 * gradients are a second block of the same layout, so Adam is one flat loop.
 *
 * Block layout (lsmi_mlp_nparams floats):
 *   W1 (H, in) | b1 (H) | W2 (H, H) | b2 (H) | W3 (C, H) | b3 (C)
 * Activation layout for a batch of up to B rows (lsmi_mlp_nacts floats):
 *   h1 (B, H) | h2 (B, H) | logits (B, C)       (h1, h2 after ReLU)
 * Backward scratch (lsmi_mlp_nscratch floats): dh1 (B, H) | dh2 (B, H)
 */
#ifndef LSMI_MLP_H
#define LSMI_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct lsmi_mlp {
  int in, hidden, classes;
  float *W1, *b1, *W2, *b2, *W3, *b3; /* views into a block */
} lsmi_mlp_t;

typedef struct lsmi_mlp_acts {
  int max_batch;
  float *h1, *h2, *logits; /* views into a block */
} lsmi_mlp_acts_t;

size_t lsmi_mlp_nparams(int in, int hidden, int classes);
/* Carves the views of m out of block (borrowed, lsmi_mlp_nparams floats). */
void lsmi_mlp_bind(lsmi_mlp_t *m, float *block, int in, int hidden,
                   int classes);
/* PyTorch's default Linear init: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * drawn W1, b1, W2, b2, W3, b3 in row-major order. */
void lsmi_mlp_init(lsmi_mlp_t *m, lsmi_rng_t *rng);

size_t lsmi_mlp_nacts(int hidden, int classes, int max_batch);
void lsmi_mlp_acts_bind(lsmi_mlp_acts_t *a, float *block, int hidden,
                        int classes, int max_batch);
size_t lsmi_mlp_nscratch(int hidden, int max_batch);

/* Forward pass of B rows of x (row stride ldx floats) into a. */
void lsmi_mlp_forward(const lsmi_mlp_t *m, lsmi_mlp_acts_t *a, const float *x,
                      size_t ldx, int B);

/*
 * Mean cross-entropy of logits (B, C) against y (B); writes
 * dlogits (B, C) = (softmax(logits) - onehot(y)) / B and returns the loss.
 */
double lsmi_ce_forward_backward(float *dlogits, const float *logits,
                                const int32_t *y, int B, int C);

/* out[b] = log softmax(logits[b])[y[b]] for B rows (no gradient). */
void lsmi_log_softmax_at(double *out, const float *logits, const int32_t *y,
                         int B, int C);

/*
 * Backward pass: given the forward activations a for the same x and
 * dlogits (B, C), OVERWRITES the gradient block viewed by grad (same
 * shapes as m). scratch: lsmi_mlp_nscratch floats.
 */
void lsmi_mlp_backward(const lsmi_mlp_t *m, lsmi_mlp_t *grad, float *scratch,
                       const lsmi_mlp_acts_t *a, const float *dlogits,
                       const float *x, size_t ldx, int B);

#endif
