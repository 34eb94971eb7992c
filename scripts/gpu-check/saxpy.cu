// gantry's GPU check: y = a*x + y on the GPU, checked on the CPU. Prints one line and exits 0 on success.
#include <cstdio>
#include <cuda_runtime.h>

__global__ void saxpy(int n, float a, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

static int fail(const char *what, cudaError_t err) {
  printf("CUDA error in %s: %s\n", what, cudaGetErrorString(err));
  return 1;
}

int main() {
  const int n = 1 << 20;
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) return fail("cudaGetDeviceCount", err);
  cudaDeviceProp prop;
  if ((err = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) return fail("cudaGetDeviceProperties", err);

  float *x, *y, *dx, *dy;
  x = new float[n];
  y = new float[n];
  for (int i = 0; i < n; i++) { x[i] = 1.0f; y[i] = (float)i; }
  if ((err = cudaMalloc(&dx, n * sizeof(float))) != cudaSuccess) return fail("cudaMalloc", err);
  if ((err = cudaMalloc(&dy, n * sizeof(float))) != cudaSuccess) return fail("cudaMalloc", err);
  cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dy, y, n * sizeof(float), cudaMemcpyHostToDevice);
  saxpy<<<(n + 255) / 256, 256>>>(n, 2.0f, dx, dy);
  if ((err = cudaGetLastError()) != cudaSuccess) return fail("kernel launch", err);
  if ((err = cudaMemcpy(y, dy, n * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess) return fail("cudaMemcpy", err);

  int wrong = 0;
  for (int i = 0; i < n; i++) if (y[i] != 2.0f + (float)i) wrong++;
  printf("saxpy on %d element(s) by %s (%d device(s) visible): %s\n", n, prop.name, devices, wrong ? "WRONG" : "ok");
  cudaFree(dx);
  cudaFree(dy);
  return wrong ? 1 : 0;
}
