#include "core/backend/cuda/cuda_backend.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/cuda/cuda_block_runner.h"
#include "core/backend/cuda/cuda_libraries.h"
#include "core/backend/cuda/device_buffer.h"
#include "core/backend/cuda/kernels.h"
#include "core/backend/kernels/e8p_tables.h"

namespace caldera::cuda {
namespace {

using backend::Accumulate;
using backend::ConstRefF;
using backend::MatrixD;
using backend::MatrixF;
using backend::Op;
using backend::RefF;

absl::Status SolverStatus(cusolverStatus_t s, const char* call) {
  if (s == CUSOLVER_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": cusolverStatus_t ", static_cast<int>(s)));
}

cublasOperation_t BlasOp(Op op) { return op == Op::kN ? CUBLAS_OP_N : CUBLAS_OP_T; }

struct StreamDeleter {
  const CudaLibraries* lib = nullptr;
  void operator()(CUstream_st* s) const { lib->cudaStreamDestroy(s); }
};
struct BlasDeleter {
  const CudaLibraries* lib = nullptr;
  void operator()(cublasContext* h) const { lib->cublasDestroy(h); }
};
struct SolverDeleter {
  const CudaLibraries* lib = nullptr;
  void operator()(cusolverDnContext* h) const { lib->cusolverDnDestroy(h); }
};

class CudaBackend final : public backend::ComputeBackend {
 public:
  static absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> Create(int device) {
    // cuBLAS and cuSOLVER are loaded here, not linked (cuda_libraries.h).
    absl::StatusOr<std::unique_ptr<CudaLibraries>> libs = CudaLibraries::Load();
    if (!libs.ok()) return libs.status();
    const CudaLibraries& lib = **libs;
    int count = 0;
    if (absl::Status s = CudaStatus(lib, lib.cudaGetDeviceCount(&count), "cudaGetDeviceCount");
        !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device cuda:", device, ": no CUDA device (", s.message(), ")"));
    }
    if (device < 0 || device >= count) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device cuda:", device, ": ", count, " CUDA device(s) visible"));
    }
    std::unique_ptr<CudaBackend> b(new CudaBackend(device, *std::move(libs)));
    if (absl::Status s = CudaStatus(lib, lib.cudaSetDevice(device), "cudaSetDevice"); !s.ok())
      return s;
    cudaStream_t stream = nullptr;
    if (absl::Status s =
            CudaStatus(lib, lib.cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                       "cudaStreamCreateWithFlags");
        !s.ok())
      return s;
    b->stream_ = StreamPtr(stream, StreamDeleter{&lib});
    cublasHandle_t blas = nullptr;
    if (absl::Status s = CublasStatus(lib, lib.cublasCreate(&blas), "cublasCreate"); !s.ok())
      return s;
    b->blas_ = BlasPtr(blas, BlasDeleter{&lib});
    if (absl::Status s = CublasStatus(lib, lib.cublasSetStream(blas, stream), "cublasSetStream");
        !s.ok())
      return s;
    // Products in full float precision (no TF32): checked against the CPU.
    if (absl::Status s = CublasStatus(lib, lib.cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH),
                                      "cublasSetMathMode");
        !s.ok())
      return s;
    cusolverDnHandle_t solver = nullptr;
    if (absl::Status s = SolverStatus(lib.cusolverDnCreate(&solver), "cusolverDnCreate"); !s.ok())
      return s;
    b->solver_ = SolverPtr(solver, SolverDeleter{&lib});
    if (absl::Status s =
            SolverStatus(lib.cusolverDnSetStream(solver, stream), "cusolverDnSetStream");
        !s.ok())
      return s;
    absl::StatusOr<std::unique_ptr<KernelModule>> kernels = KernelModule::Load(lib);
    if (!kernels.ok()) return kernels.status();
    b->kernels_ = *std::move(kernels);
    return std::unique_ptr<backend::ComputeBackend>(std::move(b));
  }

  // Free and total memory of this backend's device (cudaMemGetInfo).
  absl::StatusOr<backend::DeviceMemoryInfo> DeviceMemory() override {
    if (absl::Status s = Activate(); !s.ok()) return s;
    size_t free_bytes = 0, total_bytes = 0;
    if (absl::Status s =
            CudaStatus(*lib_, lib_->cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
        !s.ok())
      return s;
    return backend::DeviceMemoryInfo{static_cast<int64_t>(free_bytes),
                                     static_cast<int64_t>(total_bytes)};
  }

  std::string Name() const override { return absl::StrCat("cuda:", device_); }

  absl::Status Gemm(Op op_a, Op op_b, float alpha, ConstRefF a, ConstRefF b, Accumulate acc,
                    RefF c) override {
    const int64_t m = c.rows(), n = c.cols();
    const int64_t k = op_a == Op::kN ? a.cols() : a.rows();
    const int64_t am = op_a == Op::kN ? a.rows() : a.cols();
    const int64_t bk = op_b == Op::kN ? b.rows() : b.cols();
    const int64_t bn = op_b == Op::kN ? b.cols() : b.rows();
    if (am != m || bk != k || bn != n) {
      return absl::InvalidArgumentError(absl::StrCat("Gemm: shapes ", am, "x", k, " · ", bk, "x",
                                                     bn, " do not give ", m, "x", n));
    }
    if (m == 0 || n == 0) return absl::OkStatus();
    if (k == 0) {
      if (acc == Accumulate::kAssign) c.setZero();
      return absl::OkStatus();
    }
    if (absl::Status s = Activate(); !s.ok()) return s;
    absl::StatusOr<DeviceBuffer<float>> da = Upload(a.data(), a.rows(), a.cols(), a.outerStride());
    if (!da.ok()) return da.status();
    absl::StatusOr<DeviceBuffer<float>> db = Upload(b.data(), b.rows(), b.cols(), b.outerStride());
    if (!db.ok()) return db.status();
    absl::StatusOr<DeviceBuffer<float>> dc = acc == Accumulate::kAdd
                                                 ? Upload(c.data(), m, n, c.outerStride())
                                                 : DeviceBuffer<float>::Create(*lib_, m * n);
    if (!dc.ok()) return dc.status();
    const float beta = acc == Accumulate::kAdd ? 1.0f : 0.0f;
    if (absl::Status s = CublasStatus(
            *lib_,
            lib_->cublasSgemm(blas_.get(), BlasOp(op_a), BlasOp(op_b), static_cast<int>(m),
                              static_cast<int>(n), static_cast<int>(k), &alpha, da->data(),
                              static_cast<int>(a.rows()), db->data(), static_cast<int>(b.rows()),
                              &beta, dc->data(), static_cast<int>(m)),
            "cublasSgemm");
        !s.ok())
      return s;
    return Download(*dc, m, n, c.data(), c.outerStride());
  }

  absl::Status GemmD(Op op_a, Op op_b, const Eigen::Ref<const MatrixD>& a,
                     const Eigen::Ref<const MatrixD>& b, MatrixD* c) override {
    const int64_t m = op_a == Op::kN ? a.rows() : a.cols();
    const int64_t k = op_a == Op::kN ? a.cols() : a.rows();
    const int64_t bk = op_b == Op::kN ? b.rows() : b.cols();
    const int64_t n = op_b == Op::kN ? b.cols() : b.rows();
    if (bk != k) return absl::InvalidArgumentError("GemmD: inner dimensions differ");
    c->resize(m, n);
    if (m == 0 || n == 0) return absl::OkStatus();
    if (k == 0) {
      c->setZero();
      return absl::OkStatus();
    }
    if (absl::Status s = Activate(); !s.ok()) return s;
    absl::StatusOr<DeviceBuffer<double>> da = Upload(a.data(), a.rows(), a.cols(), a.outerStride());
    if (!da.ok()) return da.status();
    absl::StatusOr<DeviceBuffer<double>> db = Upload(b.data(), b.rows(), b.cols(), b.outerStride());
    if (!db.ok()) return db.status();
    absl::StatusOr<DeviceBuffer<double>> dc = DeviceBuffer<double>::Create(*lib_, m * n);
    if (!dc.ok()) return dc.status();
    const double one = 1.0, zero = 0.0;
    if (absl::Status s = CublasStatus(
            *lib_,
            lib_->cublasDgemm(blas_.get(), BlasOp(op_a), BlasOp(op_b), static_cast<int>(m),
                              static_cast<int>(n), static_cast<int>(k), &one, da->data(),
                              static_cast<int>(a.rows()), db->data(), static_cast<int>(b.rows()),
                              &zero, dc->data(), static_cast<int>(m)),
            "cublasDgemm");
        !s.ok())
      return s;
    return Download(*dc, m, n, c->data(), m);
  }

  absl::Status SyrkLowerD(double alpha, const MatrixD& a, MatrixD* c) override {
    const int64_t n = c->rows(), k = a.cols();
    if (c->cols() != n || a.rows() != n) {
      return absl::InvalidArgumentError("SyrkLowerD: c must be n x n and a n x k");
    }
    if (n == 0 || k == 0) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    absl::StatusOr<DeviceBuffer<double>> da = Upload(a.data(), n, k, n);
    if (!da.ok()) return da.status();
    absl::StatusOr<DeviceBuffer<double>> dc = Upload(c->data(), n, n, n);
    if (!dc.ok()) return dc.status();
    const double one = 1.0;
    if (absl::Status s = CublasStatus(
            *lib_,
            lib_->cublasDsyrk(blas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(n),
                              static_cast<int>(k), &alpha, da->data(), static_cast<int>(n), &one,
                              dc->data(), static_cast<int>(n)),
            "cublasDsyrk");
        !s.ok())
      return s;
    return Download(*dc, n, n, c->data(), n);
  }

  absl::Status TrmmRightLower(const MatrixF& a, const MatrixF& l, MatrixF* y) override {
    const int64_t m = a.rows(), n = a.cols();
    if (l.rows() != n || l.cols() != n) {
      return absl::InvalidArgumentError("TrmmRightLower: l must be square with a's columns");
    }
    y->resize(m, n);
    if (m == 0 || n == 0) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    absl::StatusOr<DeviceBuffer<float>> da = Upload(a.data(), m, n, m);
    if (!da.ok()) return da.status();
    absl::StatusOr<DeviceBuffer<float>> dl = Upload(l.data(), n, n, n);
    if (!dl.ok()) return dl.status();
    absl::StatusOr<DeviceBuffer<float>> dy = DeviceBuffer<float>::Create(*lib_, m * n);
    if (!dy.ok()) return dy.status();
    const float one = 1.0f;
    if (absl::Status s = CublasStatus(
            *lib_,
            lib_->cublasStrmm(blas_.get(), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                              CUBLAS_DIAG_NON_UNIT, static_cast<int>(m), static_cast<int>(n), &one,
                              dl->data(), static_cast<int>(n), da->data(), static_cast<int>(m),
                              dy->data(), static_cast<int>(m)),
            "cublasStrmm");
        !s.ok())
      return s;
    return Download(*dy, m, n, y->data(), m);
  }

  absl::Status TrsmRightLower(const MatrixF& l, MatrixF* x) override {
    const int64_t m = x->rows(), n = x->cols();
    if (l.rows() != n || l.cols() != n) {
      return absl::InvalidArgumentError("TrsmRightLower: l must be square with x's columns");
    }
    if (m == 0 || n == 0) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    absl::StatusOr<DeviceBuffer<float>> dl = Upload(l.data(), n, n, n);
    if (!dl.ok()) return dl.status();
    absl::StatusOr<DeviceBuffer<float>> dx = Upload(x->data(), m, n, m);
    if (!dx.ok()) return dx.status();
    const float one = 1.0f;
    if (absl::Status s = CublasStatus(
            *lib_,
            lib_->cublasStrsm(blas_.get(), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                              CUBLAS_DIAG_NON_UNIT, static_cast<int>(m), static_cast<int>(n), &one,
                              dl->data(), static_cast<int>(n), dx->data(), static_cast<int>(m)),
            "cublasStrsm");
        !s.ok())
      return s;
    return Download(*dx, m, n, x->data(), m);
  }

  absl::StatusOr<MatrixD> CholeskyLowerD(const MatrixD& h) override {
    const int64_t n = h.rows();
    if (h.cols() != n) return absl::InvalidArgumentError("CholeskyLowerD: h must be square");
    if (n == 0) return MatrixD(0, 0);
    if (absl::Status s = Activate(); !s.ok()) return s;
    absl::StatusOr<DeviceBuffer<double>> da = Upload(h.data(), n, n, n);
    if (!da.ok()) return da.status();
    int lwork = 0;
    if (absl::Status s =
            SolverStatus(lib_->cusolverDnDpotrf_bufferSize(solver_.get(), CUBLAS_FILL_MODE_LOWER,
                                                           static_cast<int>(n), da->data(),
                                                           static_cast<int>(n), &lwork),
                         "cusolverDnDpotrf_bufferSize");
        !s.ok())
      return s;
    absl::StatusOr<DeviceBuffer<double>> work = DeviceBuffer<double>::Create(*lib_, lwork);
    if (!work.ok()) return work.status();
    absl::StatusOr<DeviceBuffer<int>> info = DeviceBuffer<int>::Create(*lib_, 1);
    if (!info.ok()) return info.status();
    if (absl::Status s =
            SolverStatus(lib_->cusolverDnDpotrf(
                             solver_.get(), CUBLAS_FILL_MODE_LOWER, static_cast<int>(n), da->data(),
                             static_cast<int>(n), work->data(), lwork, info->data()),
                         "cusolverDnDpotrf");
        !s.ok())
      return s;
    MatrixD l(n, n);
    if (absl::Status s = Download(*da, n, n, l.data(), n); !s.ok()) return s;
    int host_info = 0;
    if (absl::Status s = Download(*info, 1, 1, &host_info, 1); !s.ok()) return s;
    if (host_info > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the matrix is not positive definite (cusolverDnDpotrf: leading minor ", host_info, ")"));
    }
    if (host_info < 0) {
      return absl::InternalError(absl::StrCat("cusolverDnDpotrf: bad argument ", -host_info));
    }
    l.triangularView<Eigen::StrictlyUpper>().setZero();
    return l;
  }

  // ---- On the CPU backend (see cuda_backend.h).
  absl::StatusOr<MatrixF> SpdSolve(const MatrixF& s, const MatrixF& b) override {
    return cpu_.SpdSolve(s, b);
  }
  absl::StatusOr<MatrixF> SpdSolveTransposed(const MatrixF& s, const MatrixF& b) override {
    return cpu_.SpdSolveTransposed(s, b);
  }
  absl::StatusOr<MatrixD> BlockLdlD(const MatrixD& h, int64_t block, MatrixD* d_chol) override {
    return cpu_.BlockLdlD(h, block, d_chol);
  }
  absl::Status ThinSvd(const MatrixF& y, MatrixF* u, Eigen::VectorXf* s, MatrixF* v) override {
    return cpu_.ThinSvd(y, u, s, v);
  }
  absl::StatusOr<MatrixF> OrthonormalBasis(const MatrixF& z, int64_t cols) override {
    return cpu_.OrthonormalBasis(z, cols);
  }
  absl::StatusOr<MatrixD> QrUpperD(const MatrixD& a) override { return cpu_.QrUpperD(a); }
  absl::Status RightSingularD(const MatrixD& z, Eigen::VectorXd* s, MatrixD* v) override {
    return cpu_.RightSingularD(z, s, v);
  }
  // The quantizer's own code on the CPU with its E8P searches on the device
  // (WithDeviceSearch); uniform and float quantizers have none.
  absl::StatusOr<MatrixF> QuantizeNearest(quant::MatrixQuantizer& q, const MatrixF& a) override {
    absl::StatusOr<MatrixF> result;
    if (absl::Status s = WithDeviceSearch(q,
                                          [&] {
                                            result = cpu_.QuantizeNearest(q, a);
                                            return result.status();
                                          });
        !s.ok())
      return s;
    return result;
  }
  absl::Status LdlqBlockStep(quant::MatrixQuantizer& q, int64_t c0, ConstRefF target,
                             RefF out) override {
    return WithDeviceSearch(q, [&] { return cpu_.LdlqBlockStep(q, c0, target, out); });
  }

  // ---- Own kernels.
  absl::Status HadamardColumns(const transform::HadamardTransform& t, bool transpose,
                               MatrixF* x) override {
    return Hadamard(t, transpose, /*rows=*/false, x);
  }
  absl::Status HadamardRows(const transform::HadamardTransform& t, bool transpose,
                            MatrixF* x) override {
    return Hadamard(t, transpose, /*rows=*/true, x);
  }
  absl::Status HadamardColumnsD(const transform::HadamardTransform& t, bool transpose,
                                MatrixD* x) override {
    return Hadamard(t, transpose, /*rows=*/false, x);
  }
  absl::Status HadamardRowsD(const transform::HadamardTransform& t, bool transpose,
                             MatrixD* x) override {
    return Hadamard(t, transpose, /*rows=*/true, x);
  }

  absl::StatusOr<std::unique_ptr<backend::BlockRunner>> PrepareBlock(
      const model::ModelConfig& config, const model::BlockWeights& weights, int64_t seq_len,
      model::BlockHessians* hessians) override {
    return PrepareCudaBlock(
        CudaContext{lib_.get(), stream_.get(), blas_.get(), kernels_.get(), device_}, config,
        weights, seq_len, hessians);
  }

  absl::Status E8pNearest(const float* x, int64_t count, uint16_t* codes, float* out) override {
    if (count == 0) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    if (!e8p_.has_value()) {
      const backend::kernels::E8pTables host =
          backend::kernels::BuildE8pTables(quant::E8PCodebook());
      E8pDevice dev;
      absl::StatusOr<DeviceBuffer<float>> abs_aos =
          Upload(host.abs_aos.data(), 1, static_cast<int64_t>(host.abs_aos.size()), 1);
      absl::StatusOr<DeviceBuffer<float>> norm2 =
          Upload(host.norm2.data(), 1, static_cast<int64_t>(host.norm2.size()), 1);
      absl::StatusOr<DeviceBuffer<int>> parity =
          Upload(host.parity.data(), 1, static_cast<int64_t>(host.parity.size()), 1);
      absl::StatusOr<DeviceBuffer<int16_t>> digits = Upload(
          host.pattern_of_digits.data(), 1, static_cast<int64_t>(host.pattern_of_digits.size()), 1);
      if (!abs_aos.ok()) return abs_aos.status();
      if (!norm2.ok()) return norm2.status();
      if (!parity.ok()) return parity.status();
      if (!digits.ok()) return digits.status();
      // The uploads must finish before `host` goes away.
      if (absl::Status s = CudaStatus(*lib_, lib_->cudaStreamSynchronize(stream_.get()),
                                      "cudaStreamSynchronize");
          !s.ok())
        return s;
      dev.abs_aos = *std::move(abs_aos);
      dev.norm2 = *std::move(norm2);
      dev.parity = *std::move(parity);
      dev.pattern_of_digits = *std::move(digits);
      e8p_ = std::move(dev);
    }
    const backend::kernels::E8pTablesView view{e8p_->abs_aos.data(), e8p_->norm2.data(),
                                               e8p_->parity.data(), e8p_->pattern_of_digits.data()};
    // Scratch kept between calls (the LDLQ steps call this once per block).
    if (absl::Status s = Reserve(&e8p_->x, 8 * count); !s.ok()) return s;
    if (absl::Status s = Reserve(&e8p_->out, 8 * count); !s.ok()) return s;
    if (absl::Status s = Reserve(&e8p_->codes, count); !s.ok()) return s;
    if (absl::Status s =
            CudaStatus(*lib_,
                       lib_->cudaMemcpy2DAsync(e8p_->x.data(), 8 * count * sizeof(float), x,
                                               8 * count * sizeof(float), 8 * count * sizeof(float),
                                               1, cudaMemcpyHostToDevice, stream_.get()),
                       "cudaMemcpy2DAsync(host to device)");
        !s.ok())
      return s;
    if (absl::Status s =
            CudaStatus(*lib_,
                       kernels_->E8pNearest(view, e8p_->x.data(), count, e8p_->codes.data(),
                                            e8p_->out.data(), stream_.get()),
                       "E8pKernel launch");
        !s.ok())
      return s;
    if (absl::Status s = Download(e8p_->codes, 1, count, codes, 1); !s.ok()) return s;
    return Download(e8p_->out, 8, count, out, 8);
  }

 private:
  struct E8pDevice {
    DeviceBuffer<float> abs_aos, norm2;
    DeviceBuffer<float> x, out;  // E8pNearest's scratch, grown as needed
    DeviceBuffer<uint16_t> codes;
    DeviceBuffer<int> parity;
    DeviceBuffer<int16_t> pattern_of_digits;
  };

  using StreamPtr = std::unique_ptr<CUstream_st, StreamDeleter>;
  using BlasPtr = std::unique_ptr<cublasContext, BlasDeleter>;
  using SolverPtr = std::unique_ptr<cusolverDnContext, SolverDeleter>;

  CudaBackend(int device, std::unique_ptr<CudaLibraries> lib)
      : device_(device), lib_(std::move(lib)) {}

  absl::Status Activate() const {
    return CudaStatus(*lib_, lib_->cudaSetDevice(device_), "cudaSetDevice");
  }

  // Runs `body` with q's E8P searches on this device (E8pNearest). After a
  // device search fails, the rest of body's searches run on the CPU (so q's
  // state stays consistent) and the first device error is the result.
  template <typename Body>
  absl::Status WithDeviceSearch(quant::MatrixQuantizer& q, Body body) {
    absl::Status device_error;
    q.set_e8p_search(
        [this, &device_error](const float* x, int64_t count, uint16_t* codes, float* out) {
          if (device_error.ok()) {
            device_error = E8pNearest(x, count, codes, out);
            if (device_error.ok()) return;
          }
          (void)cpu_.E8pNearest(x, count, codes, out);
        });
    absl::Status s = body();
    q.set_e8p_search(nullptr);
    return s.ok() ? device_error : s;
  }

  // Grows `b` to hold at least `size` elements (contents not kept).
  template <typename T>
  absl::Status Reserve(DeviceBuffer<T>* b, int64_t size) {
    if (b->size() >= size) return absl::OkStatus();
    absl::StatusOr<DeviceBuffer<T>> grown = DeviceBuffer<T>::Create(*lib_, size);
    if (!grown.ok()) return grown.status();
    *b = *std::move(grown);
    return absl::OkStatus();
  }

  // A rows × cols column-major host matrix with leading dimension ld, copied
  // to a new, densely packed device buffer (enqueued on the stream).
  template <typename T>
  absl::StatusOr<DeviceBuffer<T>> Upload(const T* host, int64_t rows, int64_t cols, int64_t ld) {
    absl::StatusOr<DeviceBuffer<T>> d = DeviceBuffer<T>::Create(*lib_, rows * cols);
    if (!d.ok() || rows * cols == 0) return d;
    if (absl::Status s = CudaStatus(
            *lib_,
            lib_->cudaMemcpy2DAsync(d->data(), rows * sizeof(T), host, ld * sizeof(T),
                                    rows * sizeof(T), cols, cudaMemcpyHostToDevice, stream_.get()),
            "cudaMemcpy2DAsync(host to device)");
        !s.ok())
      return s;
    return d;
  }

  // The reverse, then waits for the stream (every operation ends here).
  template <typename T>
  absl::Status Download(const DeviceBuffer<T>& d, int64_t rows, int64_t cols, T* host, int64_t ld) {
    if (rows * cols > 0) {
      if (absl::Status s =
              CudaStatus(*lib_,
                         lib_->cudaMemcpy2DAsync(host, ld * sizeof(T), d.data(), rows * sizeof(T),
                                                 rows * sizeof(T), cols, cudaMemcpyDeviceToHost,
                                                 stream_.get()),
                         "cudaMemcpy2DAsync(device to host)");
          !s.ok())
        return s;
    }
    return CudaStatus(*lib_, lib_->cudaStreamSynchronize(stream_.get()), "cudaStreamSynchronize");
  }

  template <typename Matrix>
  absl::Status Hadamard(const transform::HadamardTransform& t, bool transpose, bool rows,
                        Matrix* x) {
    using T = typename Matrix::Scalar;
    const int64_t n = t.size(), len = rows ? x->cols() : x->rows();
    const int64_t count = rows ? x->rows() : x->cols();
    if (len != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("Hadamard: vectors of ", len, " for a transform of size ", n));
    }
    if (count == 0 || n == 0) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    const int k = t.order();
    std::vector<T> hk;
    if (k > 1) {
      absl::StatusOr<Eigen::MatrixXf> h = transform::HadamardMatrix(k);
      if (!h.ok()) return h.status();
      hk.resize(static_cast<size_t>(k) * k);
      // Row-major h with h = H_K (transpose) or H_Kᵀ, as HadamardTransform mixes.
      for (int a = 0; a < k; ++a) {
        for (int b = 0; b < k; ++b) {
          hk[static_cast<size_t>(a * k + b)] = static_cast<T>(transpose ? (*h)(a, b) : (*h)(b, a));
        }
      }
    }
    const int64_t r = x->rows(), c = x->cols();
    absl::StatusOr<DeviceBuffer<T>> dx = Upload(x->data(), r, c, r);
    if (!dx.ok()) return dx.status();
    absl::StatusOr<DeviceBuffer<T>> dh = Upload(hk.data(), 1, static_cast<int64_t>(hk.size()), 1);
    if (!dh.ok()) return dh.status();
    absl::StatusOr<DeviceBuffer<T>> scratch = DeviceBuffer<T>::Create(*lib_, k > 1 ? count * n : 0);
    if (!scratch.ok()) return scratch.status();
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(n)));
    if (absl::Status s =
            CudaStatus(*lib_,
                       kernels_->Hadamard(dx->data(), count, n, rows ? 1 : r, rows ? r : 1, k,
                                          dh->data(), scratch->data(), scale, stream_.get()),
                       "Hadamard kernel launch");
        !s.ok())
      return s;
    return Download(*dx, r, c, x->data(), r);
  }

  int device_;
  // Destroyed in reverse order: the buffers, the kernels, the handles, their
  // stream, and last the libraries every one of them calls.
  std::unique_ptr<CudaLibraries> lib_;
  StreamPtr stream_;
  BlasPtr blas_;
  SolverPtr solver_;
  std::unique_ptr<KernelModule> kernels_;
  std::optional<E8pDevice> e8p_;
  backend::CpuBackend cpu_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> CreateCudaBackend(int device) {
  return CudaBackend::Create(device);
}

absl::StatusOr<double> MeasureDeviceSgemmGflops(int device, int64_t n) {
  absl::StatusOr<std::unique_ptr<CudaLibraries>> libs = CudaLibraries::Load();
  if (!libs.ok()) return libs.status();
  const CudaLibraries& lib = **libs;
  if (absl::Status s = CudaStatus(lib, lib.cudaSetDevice(device), "cudaSetDevice"); !s.ok())
    return s;
  cublasHandle_t raw = nullptr;
  if (absl::Status s = CublasStatus(lib, lib.cublasCreate(&raw), "cublasCreate"); !s.ok()) return s;
  const std::unique_ptr<cublasContext, BlasDeleter> blas(raw, BlasDeleter{&lib});
  if (absl::Status s =
          CublasStatus(lib, lib.cublasSetMathMode(raw, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
      !s.ok())
    return s;
  DeviceBuffer<float> m[3];
  for (DeviceBuffer<float>& b : m) {
    absl::StatusOr<DeviceBuffer<float>> d = DeviceBuffer<float>::Create(lib, n * n);
    if (!d.ok()) return d.status();
    b = *std::move(d);
    if (absl::Status s = CudaStatus(
            lib,
            lib.cudaMemsetAsync(b.data(), 0, static_cast<size_t>(n * n) * sizeof(float), nullptr),
            "cudaMemsetAsync");
        !s.ok())
      return s;
  }
  const float one = 1.0f, zero = 0.0f;
  const int dim = static_cast<int>(n);
  auto gemm = [&] {
    return CublasStatus(
        lib,
        lib.cublasSgemm(raw, CUBLAS_OP_N, CUBLAS_OP_N, dim, dim, dim, &one, m[0].data(), dim,
                        m[1].data(), dim, &zero, m[2].data(), dim),
        "cublasSgemm");
  };
  if (absl::Status s = gemm(); !s.ok()) return s;  // warm-up
  if (absl::Status s = CudaStatus(lib, lib.cudaStreamSynchronize(nullptr), "cudaStreamSynchronize");
      !s.ok())
    return s;
  constexpr int kRuns = 5;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) {
    if (absl::Status s = gemm(); !s.ok()) return s;
  }
  if (absl::Status s = CudaStatus(lib, lib.cudaStreamSynchronize(nullptr), "cudaStreamSynchronize");
      !s.ok())
    return s;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return kRuns * 2.0 * static_cast<double>(n) * n * n / secs / 1e9;
}

}  // namespace caldera::cuda
