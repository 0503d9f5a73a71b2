// Ampere asynchronous copies from global to shared memory (cp.async, sm_80), written as the inline
// asm of CUTLASS and cuda_pipeline_primitives.h: cp.async.{ca,cg}.shared.global with a src-size
// (bytes taken from the source, the rest zero-filled), cp.async.commit_group,
// cp.async.wait_group N (every committed group but the N newest is complete) and
// cp.async.wait_all.
//
// pipelined_sum:       out[blockIdx.x * 64 + t] = sum (mod 2^32) of x[j * 256 + k * 64 + t] over
//                      k < 4 and this block's tiles j = blockIdx.x, blockIdx.x + gridDim.x, ...
//                      (0 past n). Block 64; a 256-element tile is 64 16-byte cp.async.cg, src-size
//                      0 to 16 at the tail. Double-buffered: tile j + gridDim.x is prefetched into
//                      the other buffer, committed, then wait_group 1 (tile j complete),
//                      __syncthreads, and each thread sums a column written by four other threads;
//                      a second __syncthreads before the buffer is refilled.
// pipelined_no_wait:   BUG: the same without the wait_group (reads a cp.async destination that
//                      has not completed).
// pipelined_no_sync:   BUG: the same without the first __syncthreads (reads other threads' copies
//                      right after its own wait: a shared-memory race).
// pipelined_no_resync: BUG: the same without the second __syncthreads (refills a buffer other
//                      threads still read: a shared-memory race).
// copy_sizes:          block 32, thread t: out[t * 8 .. t * 8 + 8] (32 bytes) holds its shared
//                      row after, in order: the row filled with 0xAB, a 4-byte cp.async.ca of
//                      src-size t % 5 to bytes 0..4, a 4-byte copy with the immediate src-size 2
//                      to bytes 4..8 (.shared::cta, .L2::64B), an 8-byte copy of src-size t % 9
//                      to 8..16 (.L2::128B), a 16-byte cp.async.cg of src-size t % 17 to 16..32
//                      (.L2::256B), each from the same bytes of src + t * 32; then wait_all.
// bad_copy:            one thread, BUG by mode: 0 source not 16-byte aligned, 1 destination not
//                      8-byte aligned (Misaligned); 2 source past the end of x (n elements), 3
//                      src-size 17 > 16, 4 destination past the 64 bytes of dynamic shared
//                      memory (OutOfBounds); 5 src-size 0 with the source past the end (no error:
//                      nothing is read), out[0] = the zero it copied.
// wait_groups:         block 32, thread t: three committed groups of one 4-byte copy each
//                      (x[t * 4 + g] to its row's word g), then by mode: 0 wait_group 1 and
//                      out[t * 2 + g] = word g for g < 2; 1 the same and also reads word 2
//                      (BUG: group 3 is not complete); 2 a fourth copy, not committed, then
//                      wait_group 0 and reads word 3 (BUG: wait_group completes only committed
//                      groups); 3 the fourth copy, then wait_all, out[t * 4 + g] = word g for g < 4;
//                      4 a fourth copy and exit without a wait (no error); 5 wait_group 1,
//                      __syncthreads, then reads word 2 of its neighbour t ^ 1 (BUG: the barrier
//                      does not complete the neighbour's copy: stale data, a race).

#define THREADS 64
#define VEC 4
#define TILE (THREADS * VEC)

__device__ __forceinline__ unsigned smem(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async_cg16(void* dst, const void* src, unsigned src_size) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem(dst)), "l"(src),
                 "r"(src_size)
                 : "memory");
}

__device__ __forceinline__ void commit_group() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void wait_group() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void wait_all() {
    asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// This thread's 16 bytes of tile j: elements j * TILE + t * VEC .. + VEC, those past n zero-filled.
__device__ __forceinline__ void load_tile(unsigned* buf, const unsigned* x, int n, int j, int t) {
    const int i = j * TILE + t * VEC;
    const int left = n - i;
    const unsigned bytes = left <= 0 ? 0u : left >= VEC ? 16u : 4u * left;
    cp_async_cg16(buf + t * VEC, x + i, bytes);
}

template <bool WAIT, bool SYNC, bool RESYNC>
__device__ __forceinline__ void pipelined(const unsigned* x, unsigned* out, int n) {
    __shared__ __align__(16) unsigned buf[2][TILE];
    const int t = threadIdx.x;
    const int tiles = (n + TILE - 1) / TILE;
    unsigned acc = 0;
    int j = blockIdx.x;
    if (j < tiles) load_tile(buf[0], x, n, j, t);
    commit_group();
    for (int s = 0; j < tiles; j += gridDim.x, ++s) {
        const int next = j + gridDim.x;
        if (next < tiles) load_tile(buf[(s + 1) & 1], x, n, next, t);
        commit_group();  // possibly empty: wait_group 1 still means "all but the prefetch"
        if (WAIT) wait_group<1>();
        if (SYNC) __syncthreads();
        const unsigned* b = buf[s & 1];
        for (int k = 0; k < VEC; ++k) acc += b[k * THREADS + t];
        if (RESYNC) __syncthreads();
    }
    out[blockIdx.x * THREADS + t] = acc;
}

extern "C" __global__ void pipelined_sum(const unsigned* x, unsigned* out, int n) {
    pipelined<true, true, true>(x, out, n);
}

extern "C" __global__ void pipelined_no_wait(const unsigned* x, unsigned* out, int n) {
    pipelined<false, true, true>(x, out, n);
}

extern "C" __global__ void pipelined_no_sync(const unsigned* x, unsigned* out, int n) {
    pipelined<true, false, true>(x, out, n);
}

extern "C" __global__ void pipelined_no_resync(const unsigned* x, unsigned* out, int n) {
    pipelined<true, true, false>(x, out, n);
}

extern "C" __global__ void copy_sizes(const unsigned char* src, unsigned* out) {
    __shared__ __align__(16) unsigned row[32][8];
    const int t = threadIdx.x;
    for (int i = 0; i < 8; ++i) row[t][i] = 0xABABABABu;
    const unsigned char* s = src + t * 32;
    unsigned char* d = reinterpret_cast<unsigned char*>(row[t]);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem(d)), "l"(s),
                 "r"(t % 5)
                 : "memory");
    asm volatile("cp.async.ca.shared::cta.global.L2::64B [%0], [%1], 4, 2;\n" ::"r"(smem(d + 4)),
                 "l"(s + 4)
                 : "memory");
    asm volatile("cp.async.ca.shared.global.L2::128B [%0], [%1], 8, %2;\n" ::"r"(smem(d + 8)),
                 "l"(s + 8), "r"(t % 9)
                 : "memory");
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(smem(d + 16)),
                 "l"(s + 16), "r"(t % 17)
                 : "memory");
    wait_all();
    for (int i = 0; i < 8; ++i) out[t * 8 + i] = row[t][i];
}

extern "C" __global__ void bad_copy(const unsigned* x, int n, int mode, unsigned* out) {
    extern __shared__ __align__(16) unsigned dyn[];  // 64 bytes
    const unsigned char* base = reinterpret_cast<const unsigned char*>(dyn);
    switch (mode) {
    case 0: cp_async_cg16(dyn, x + 1, 16); break;
    case 1:
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(smem(base + 4)), "l"(x)
                     : "memory");
        break;
    case 2: cp_async_cg16(dyn, x + n, 16); break;
    case 3: cp_async_cg16(dyn, x, 17); break;
    case 4: cp_async_cg16(dyn + 16, x, 16); break;
    default: cp_async_cg16(dyn, x + n, 0); break;
    }
    wait_all();
    out[0] = dyn[0];
}

extern "C" __global__ void wait_groups(const unsigned* x, unsigned* out, int mode) {
    __shared__ __align__(16) unsigned row[32][4];
    const int t = threadIdx.x;
    for (int g = 0; g < 3; ++g) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem(&row[t][g])),
                     "l"(x + t * 4 + g)
                     : "memory");
        commit_group();
    }
    if (mode >= 2 && mode <= 4) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem(&row[t][3])),
                     "l"(x + t * 4 + 3)
                     : "memory");
    }
    switch (mode) {
    case 0:
    case 1:
        wait_group<1>();
        out[t * 2] = row[t][0];
        out[t * 2 + 1] = row[t][1];
        if (mode == 1) out[t * 2] += row[t][2];
        break;
    case 2:
        wait_group<0>();
        out[t] = row[t][3];
        break;
    case 3:
        wait_all();
        for (int g = 0; g < 4; ++g) out[t * 4 + g] = row[t][g];
        break;
    case 4: break;
    default:
        wait_group<1>();
        __syncthreads();
        out[t] = row[t ^ 1][2];
        wait_all();
        break;
    }
}
