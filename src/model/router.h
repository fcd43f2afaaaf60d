/* MoE router: sigmoid scores, group-limited top-k with expert bias for
 * selection only, deterministic ties (SPEC §3.7, §0.3). */
#ifndef RL_MODEL_ROUTER_H
#define RL_MODEL_ROUTER_H

#include "model/config.h"

/* logits: [E] router logits (fp32). bias: [E]. Writes the k chosen experts
 * in selection order (best first; exact ties: lower index first) and their
 * weights: sigma / sum(sigma of chosen) (when k > 1) * routed_scaling_factor.
 * scratch: 2*E floats. */
void rl_route(const rl_config *c, const float *logits, const float *bias, float *scratch,
              int *sel, float *w);

#endif
