#include "engine/logprob.h"

#include <math.h>

float rl_logprob(const float *logits, int n, int id) {
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)logits[i] - (double)mx);
    return (float)(((double)logits[id] - (double)mx) - log(s));
}
