/* text.h — prompts to text-encoder states, as the diffusers pipelines compute them.
 *
 * SD-1.x / SD-2.x: tokenizer/ + text_encoder/, the last hidden state (N, 77, D).
 * SDXL (text_encoder_2/ present): both encoders' penultimate hidden states
 * concatenated (N, 77, D1 + D2) and text_encoder_2's projected pooled output (N, P).
 * Each prompt is framed as diffusers does (BOS, ids, EOS, padding to 77, truncated).
 */
#ifndef LDM_EVALD_TEXT_H
#define LDM_EVALD_TEXT_H

#include <stdint.h>

#include "nn/backend.h"

struct ev_text;

/* Load the tokenizers and encoders of the diffusers folder `model`. */
int ev_text_open(struct ev_text **out, struct ldm_ctx *ctx, const char *model);
void ev_text_close(struct ev_text **t);

/* L tokens, width D of the states, pooled width P (0 without text_encoder_2). */
void ev_text_dims(const struct ev_text *t, int64_t *L, int64_t *D, int64_t *P);

/* Encode n prompts: ehs (n, L, D) and, with P > 0, pooled (n, P). */
int ev_text_encode(struct ev_text *t, const char *const *prompts, int64_t n, float *ehs,
                   float *pooled);

#endif
