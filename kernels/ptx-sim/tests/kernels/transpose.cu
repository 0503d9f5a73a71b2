// Tiled transpose: out (cols x rows) = transpose of in (rows x cols), both row-major f32.
// Launch: grid (ceil(cols/32), ceil(rows/32)), block (32, 8). Each block moves one 32x32 tile
// through shared memory padded to 33 columns (no bank conflicts); each thread does 4 rows.
// Any rows/cols: tail tiles are guarded.
#define TILE 32
#define ROWS 8

extern "C" __global__ void transpose(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;  // column in `in`
    int y = blockIdx.y * TILE + threadIdx.y;  // row in `in`
    for (int j = 0; j < TILE; j += ROWS) {
        if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * cols + x];
    }
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;  // column in `out` (= row in `in`)
    y = blockIdx.x * TILE + threadIdx.y;  // row in `out`
    for (int j = 0; j < TILE; j += ROWS) {
        if (x < rows && y + j < cols) out[(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
    }
}
