/* placeholder until the AVX-512 kernel lands */
#include "gemm_impl.h"
void lsmi_gemm_avx512(const lsmi_gemm_t *g) { lsmi_gemm_generic(g); }
int lsmi_gemm_avx512_supported(void) { return 0; }
