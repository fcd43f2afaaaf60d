/* Fused LM head + log-softmax + cross-entropy over blocks of rows.
 *
 * The block size does not change any result: logits are row-invariant, and
 * the head's and the final norm's weight gradients add the rows in order
 * whatever the blocking (each block continues from the stored sums). Larger
 * blocks make the head's GEMMs efficient; rows run in parallel. */
#include "train/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/logprob.h"
#include "train/backward_ops.h"

enum { ROWS = 64 };

int rl_loss_head(const rl_model *m, const float *x_final, const int *ids, int n, float *lp_out,
                 rl_grads *g, float *dx, float *loss, rl_err *e) {
    const rl_config *c = &m->cfg;
    int hid = c->hidden_size, V = c->vocab_size, N = n - 1;
    if (N < 1) return rl_errf(e, RL_E_ARG, "need at least 2 tokens for a next-token loss");
    float *hn = malloc(sizeof(float) * ROWS * hid);
    float *lg = malloc(sizeof(float) * ROWS * (size_t)V);
    float *dh = g ? malloc(sizeof(float) * ROWS * hid) : NULL;
    if (!hn || !lg || (g && !dh)) {
        free(hn); free(lg); free(dh);
        return rl_errf(e, RL_E_NOMEM, "out of memory (LM head, %d x %d logits)", ROWS, V);
    }
    double lsum = 0;
    float lpb[ROWS];
    for (int r0 = 0; r0 < N; r0 += ROWS) {
        int nb = N - r0 < ROWS ? N - r0 : ROWS;
        const float *xr = x_final + (size_t)r0 * hid;
        m->ops->rmsnorm(xr, nb, hid, m->final_norm, c->rms_norm_eps, hn);
        m->ops->matmul(&m->lm_head, hn, hid, nb, lg, V);
#pragma omp parallel
        {
            /* each exp is taken once and kept in double (a thread's row at a
             * time); without the buffer it is taken twice, same values */
            double *ex = g ? malloc(sizeof(double) * (size_t)V) : NULL;
#pragma omp for schedule(static)
            for (int r = 0; r < nb; r++) {
                float *l = lg + (size_t)r * V;
                int tgt = ids[r0 + r + 1];
                float lp = rl_logprob(l, V, tgt);
                lpb[r] = lp;
                if (!g) continue;
                /* d(-lp)/dl_i = softmax_i - [i == tgt], with rl_logprob's max and sum */
                float mx = l[0];
                for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
                double s = 0;
                if (ex) {
                    for (int i = 0; i < V; i++) {
                        ex[i] = exp((double)l[i] - (double)mx);
                        s += ex[i];
                    }
                } else {
                    for (int i = 0; i < V; i++) s += exp((double)l[i] - (double)mx);
                }
                double inv = 1.0 / (s * (double)N);
                for (int i = 0; i < V; i++)
                    l[i] = (float)((ex ? ex[i] : exp((double)l[i] - (double)mx)) * inv);
                l[tgt] -= (float)(1.0 / N);
            }
            free(ex);
        }
        for (int r = 0; r < nb; r++) { /* the loss sums in row order */
            if (lp_out) lp_out[r0 + r] = lpb[r];
            lsum -= lpb[r];
        }
        if (g) {
            memset(dh, 0, sizeof(float) * (size_t)nb * hid);
            rl_bwd_matmul(&m->lm_head, hn, hid, nb, lg, V, dh, hid, g->lm_head);
            rl_bwd_rmsnorm_rows(xr, nb, hid, m->final_norm, c->rms_norm_eps, dh,
                                dx + (size_t)r0 * hid, g->final_norm);
        }
    }
    if (loss) *loss = (float)(lsum / N);
    free(hn); free(lg); free(dh);
    return RL_OK;
}
