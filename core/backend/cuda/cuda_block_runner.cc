#include "core/backend/cuda/cuda_block_runner.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/cuda/device_buffer.h"

namespace caldera::cuda {
namespace {

// One column-major cuBLAS operand: a device pointer and its leading dimension.
struct Operand {
  const float* data;
  int64_t ld;
};

class CudaBlockRunner final : public backend::BlockRunner {
 public:
  CudaBlockRunner(const CudaContext& context, const model::ModelConfig& config, int64_t seq_len,
                  model::BlockHessians* hessians)
      : ctx_(context), lib_(*context.lib), c_(config), seq_len_(seq_len), hessians_(hessians) {}

  absl::Status Prepare(const model::BlockWeights& w) {
    if (absl::Status s = Activate(); !s.ok()) return s;
    struct {
      const model::RowMatrixF* host;
      DeviceBuffer<float>* device;
    } linears[] = {{&w.q, &q_},       {&w.k, &k_},   {&w.v, &v_},      {&w.o, &o_},
                   {&w.gate, &gate_}, {&w.up, &up_}, {&w.down, &down_}};
    for (auto& l : linears) {
      if (absl::Status s = UploadInto(l.host->data(), l.host->size(), l.device); !s.ok()) return s;
    }
    struct {
      const model::VectorF* host;
      DeviceBuffer<float>* device;
    } vectors[] = {{&w.input_norm, &input_norm_},
                   {&w.post_norm, &post_norm_},
                   {&w.q_bias, &q_bias_},
                   {&w.k_bias, &k_bias_},
                   {&w.v_bias, &v_bias_}};
    for (auto& v : vectors) {
      if (absl::Status s = UploadInto(v.host->data(), v.host->size(), v.device); !s.ok()) return s;
    }
    const model::RopeTable rope = model::MakeRopeTable(c_, seq_len_);
    if (absl::Status s = UploadInto(rope.cos.data(), rope.cos.size(), &cos_); !s.ok()) return s;
    if (absl::Status s = UploadInto(rope.sin.data(), rope.sin.size(), &sin_); !s.ok()) return s;
    if (hessians_ != nullptr) {
      const int64_t q_width = c_.num_heads * c_.head_dim;
      const int64_t sizes[] = {c_.hidden_size, q_width, c_.hidden_size, c_.intermediate_size};
      for (int i = 0; i < 4; ++i) {
        if (absl::Status s = Zeros(sizes[i] * sizes[i], &sums_[i]); !s.ok()) return s;
      }
      const int64_t widest = *std::max_element(std::begin(sizes), std::end(sizes));
      absl::StatusOr<DeviceBuffer<float>> scratch =
          DeviceBuffer<float>::Create(lib_, widest * widest);
      if (!scratch.ok()) return scratch.status();
      syrk_scratch_ = *std::move(scratch);
    }
    return Sync();
  }

  absl::Status Forward(model::RowMatrixF* hidden) override {
    const int64_t tokens = hidden->rows(), hs = c_.hidden_size;
    if (tokens % seq_len_ != 0 || hidden->cols() != hs) {
      return absl::InvalidArgumentError(
          absl::StrCat("block forward: hidden states of ", tokens, " x ", hidden->cols(),
                       " are not whole sequences of ", seq_len_, " x ", hs));
    }
    if (tokens == 0) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    if (absl::Status s = SizeActivations(tokens); !s.ok()) return s;
    const int64_t d = c_.head_dim, qw = c_.num_heads * d, kvw = c_.num_kv_heads * d;
    const int64_t inter = c_.intermediate_size;
    const cudaStream_t st = ctx_.stream;
    const KernelModule& kern = *ctx_.kernels;
    float* h = act_.hidden.data();
    float* x = act_.x.data();
    if (absl::Status s = Copy(hidden->data(), h, tokens * hs, cudaMemcpyHostToDevice); !s.ok())
      return s;

    // Attention half.
    if (absl::Status s = NormalizeInput(input_norm_, tokens, 0); !s.ok()) return s;
    struct {
      const DeviceBuffer<float>* weight;
      const DeviceBuffer<float>* bias;
      float* out;
      int64_t width;
    } qkv[] = {{&q_, &q_bias_, act_.q.data(), qw},
               {&k_, &k_bias_, act_.k.data(), kvw},
               {&v_, &v_bias_, act_.v.data(), kvw}};
    for (auto& p : qkv) {
      if (absl::Status s = Project(*p.weight, hs, Operand{x, hs}, tokens, 0.0f, p.out, p.width);
          !s.ok())
        return s;
      if (c_.attention_bias) {
        if (absl::Status s =
                Launched(kern.AddBias(p.out, p.bias->data(), tokens, p.width, st), "bias kernel");
            !s.ok())
          return s;
      }
    }
    if (absl::Status s = Launched(kern.Rope(act_.q.data(), cos_.data(), sin_.data(), tokens,
                                            seq_len_, c_.num_heads, d, st),
                                  "RoPE kernel (q)");
        !s.ok())
      return s;
    if (absl::Status s = Launched(kern.Rope(act_.k.data(), cos_.data(), sin_.data(), tokens,
                                            seq_len_, c_.num_kv_heads, d, st),
                                  "RoPE kernel (k)");
        !s.ok())
      return s;
    if (absl::Status s = Attention(tokens); !s.ok()) return s;
    if (absl::Status s = AccumulateHessian(act_.attn.data(), qw, tokens, 1); !s.ok()) return s;
    if (absl::Status s = Project(o_, qw, Operand{act_.attn.data(), qw}, tokens, 1.0f, h, hs);
        !s.ok())
      return s;

    // MLP half.
    if (absl::Status s = NormalizeInput(post_norm_, tokens, 2); !s.ok()) return s;
    if (absl::Status s = Project(gate_, hs, Operand{x, hs}, tokens, 0.0f, act_.gate.data(), inter);
        !s.ok())
      return s;
    if (absl::Status s = Project(up_, hs, Operand{x, hs}, tokens, 0.0f, act_.up.data(), inter);
        !s.ok())
      return s;
    if (absl::Status s = Launched(kern.SwiGlu(act_.gate.data(), act_.up.data(), tokens * inter, st),
                                  "SwiGLU kernel");
        !s.ok())
      return s;
    if (absl::Status s = AccumulateHessian(act_.gate.data(), inter, tokens, 3); !s.ok()) return s;
    if (absl::Status s =
            Project(down_, inter, Operand{act_.gate.data(), inter}, tokens, 1.0f, h, hs);
        !s.ok())
      return s;
    if (absl::Status s = Copy(h, hidden->data(), tokens * hs, cudaMemcpyDeviceToHost); !s.ok())
      return s;
    if (absl::Status s = Sync(); !s.ok()) return s;
    if (hessians_ != nullptr) hessians_->tokens += tokens;
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    if (hessians_ == nullptr) return absl::OkStatus();
    if (absl::Status s = Activate(); !s.ok()) return s;
    Eigen::MatrixXd* host[] = {&hessians_->q_proj, &hessians_->o_proj, &hessians_->gate_proj,
                               &hessians_->down_proj};
    Eigen::MatrixXd sum;
    for (int i = 0; i < 4; ++i) {
      const int64_t n = host[i]->rows();
      if (n * n != sums_[i].size()) {
        return absl::InvalidArgumentError(absl::StrCat("block forward: Hessian ", i, " is ", n,
                                                       " x ", n, ", the device sums ",
                                                       sums_[i].size(), " values"));
      }
      sum.resize(n, n);
      if (absl::Status s = Copy(sums_[i].data(), sum.data(), n * n, cudaMemcpyDeviceToHost);
          !s.ok())
        return s;
      if (absl::Status s = Sync(); !s.ok()) return s;
      // Only the lower triangle holds sums (the rest stayed zero).
      *host[i] += sum;
      if (absl::Status s = MemsetZero(sums_[i].data(), n * n); !s.ok()) return s;
    }
    return Sync();
  }

 private:
  struct Activations {
    int64_t tokens = 0;
    DeviceBuffer<float> hidden, x, q, k, v, attn, gate, up, scores;
  };

  absl::Status Activate() const {
    return CudaStatus(lib_, lib_.cudaSetDevice(ctx_.device), "cudaSetDevice");
  }
  absl::Status Sync() const {
    return CudaStatus(lib_, lib_.cudaStreamSynchronize(ctx_.stream), "cudaStreamSynchronize");
  }
  absl::Status Launched(cudaError_t e, const char* what) const {
    return CudaStatus(lib_, e, absl::StrCat(what, " launch"));
  }

  template <typename T>
  absl::Status Copy(const T* src, T* dst, int64_t count, cudaMemcpyKind kind) const {
    if (count == 0) return absl::OkStatus();
    const size_t bytes = static_cast<size_t>(count) * sizeof(T);
    return CudaStatus(lib_,
                      lib_.cudaMemcpy2DAsync(dst, bytes, src, bytes, bytes, 1, kind, ctx_.stream),
                      kind == cudaMemcpyHostToDevice ? "cudaMemcpy2DAsync(host to device)"
                                                     : "cudaMemcpy2DAsync(device to host)");
  }
  template <typename T>
  absl::Status MemsetZero(T* p, int64_t count) const {
    if (count == 0) return absl::OkStatus();
    return CudaStatus(
        lib_, lib_.cudaMemsetAsync(p, 0, static_cast<size_t>(count) * sizeof(T), ctx_.stream),
        "cudaMemsetAsync");
  }
  template <typename T>
  absl::Status UploadInto(const T* host, int64_t count, DeviceBuffer<T>* out) {
    absl::StatusOr<DeviceBuffer<T>> d = DeviceBuffer<T>::Create(lib_, count);
    if (!d.ok()) return d.status();
    *out = *std::move(d);
    return Copy(host, out->data(), count, cudaMemcpyHostToDevice);
  }
  template <typename T>
  absl::Status Zeros(int64_t count, DeviceBuffer<T>* out) {
    absl::StatusOr<DeviceBuffer<T>> d = DeviceBuffer<T>::Create(lib_, count);
    if (!d.ok()) return d.status();
    *out = *std::move(d);
    return MemsetZero(out->data(), count);
  }

  // (Re)allocates the per-chunk buffers for `tokens` rows (kept while the
  // chunks are no larger).
  absl::Status SizeActivations(int64_t tokens) {
    if (tokens <= act_.tokens) return absl::OkStatus();
    act_ = Activations();
    const int64_t d = c_.head_dim, qw = c_.num_heads * d, kvw = c_.num_kv_heads * d;
    const int64_t sequences = tokens / seq_len_;
    const struct {
      DeviceBuffer<float>* buffer;
      int64_t count;
    } wanted[] = {{&act_.hidden, tokens * c_.hidden_size},
                  {&act_.x, tokens * c_.hidden_size},
                  {&act_.q, tokens * qw},
                  {&act_.k, tokens * kvw},
                  {&act_.v, tokens * kvw},
                  {&act_.attn, tokens * qw},
                  {&act_.gate, tokens * c_.intermediate_size},
                  {&act_.up, tokens * c_.intermediate_size},
                  {&act_.scores, sequences * seq_len_ * seq_len_}};
    for (const auto& w : wanted) {
      absl::StatusOr<DeviceBuffer<float>> b = DeviceBuffer<float>::Create(lib_, w.count);
      if (!b.ok()) return b.status();
      *w.buffer = *std::move(b);
    }
    act_.tokens = tokens;
    return absl::OkStatus();
  }

  // out[tokens, width] (= α·out +) in · Wᵀ for a row-major weight W [width,
  // in_width]: column-major, out = Wᵀᵀ · in with W seen as in_width × width.
  absl::Status Project(const DeviceBuffer<float>& weight, int64_t in_width, Operand in,
                       int64_t tokens, float beta, float* out, int64_t width) {
    const float alpha = 1.0f;
    return CublasStatus(
        lib_,
        lib_.cublasSgemm(ctx_.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(width),
                         static_cast<int>(tokens), static_cast<int>(in_width), &alpha,
                         weight.data(), static_cast<int>(in_width), in.data,
                         static_cast<int>(in.ld), &beta, out, static_cast<int>(width)),
        "cublasSgemm(projection)");
  }

  // Causal attention of every head over every sequence: per head, the
  // scores of all sequences at once (scores[s][i][j] = q_i·k_j / sqrt(d),
  // row i contiguous), the softmax of each row, then attn = P · v.
  absl::Status Attention(int64_t tokens) {
    const int64_t d = c_.head_dim, qw = c_.num_heads * d, kvw = c_.num_kv_heads * d;
    const int64_t group = c_.num_heads / c_.num_kv_heads, sequences = tokens / seq_len_;
    const int n = static_cast<int>(seq_len_), dd = static_cast<int>(d);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d)), one = 1.0f, zero = 0.0f;
    for (int64_t head = 0; head < c_.num_heads; ++head) {
      const int64_t kv = head / group;
      // Column-major C (seq × seq) with C[j + i·seq] = Σ k[j]·q[i]: kᵀ·q.
      if (absl::Status s = CublasStatus(
              lib_,
              lib_.cublasSgemmStridedBatched(
                  ctx_.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, dd, &scale, act_.k.data() + kv * d,
                  static_cast<int>(kvw), seq_len_ * kvw, act_.q.data() + head * d,
                  static_cast<int>(qw), seq_len_ * qw, &zero, act_.scores.data(), n,
                  seq_len_ * seq_len_, static_cast<int>(sequences)),
              "cublasSgemmStridedBatched(scores)");
          !s.ok())
        return s;
      if (absl::Status s =
              Launched(ctx_.kernels->CausalSoftmax(act_.scores.data(), sequences * seq_len_,
                                                   seq_len_, ctx_.stream),
                       "causal softmax kernel");
          !s.ok())
        return s;
      // attn[i, head·d + e] = Σ_j P[i, j] v[j, kv·d + e]: column-major
      // (d × seq) = v (d × seq) · C (seq_j × seq_i).
      if (absl::Status s = CublasStatus(
              lib_,
              lib_.cublasSgemmStridedBatched(
                  ctx_.blas, CUBLAS_OP_N, CUBLAS_OP_N, dd, n, n, &one, act_.v.data() + kv * d,
                  static_cast<int>(kvw), seq_len_ * kvw, act_.scores.data(), n, seq_len_ * seq_len_,
                  &zero, act_.attn.data() + head * d, static_cast<int>(qw), seq_len_ * qw,
                  static_cast<int>(sequences)),
              "cublasSgemmStridedBatched(attention)");
          !s.ok())
        return s;
    }
    return absl::OkStatus();
  }

  // x ← RMSNorm(hidden)·weight, the input of the next projections, and its
  // moments into sums[which].
  absl::Status NormalizeInput(const DeviceBuffer<float>& weight, int64_t tokens, int which) {
    const int64_t hs = c_.hidden_size;
    if (absl::Status s =
            Launched(ctx_.kernels->RmsNormRows(act_.hidden.data(), weight.data(), tokens, hs,
                                               c_.rms_norm_eps, act_.x.data(), ctx_.stream),
                     "RMSNorm kernel");
        !s.ok())
      return s;
    return AccumulateHessian(act_.x.data(), hs, tokens, which);
  }

  // sums[which] += lower(xᵀx) for x [tokens, n] row-major: one float32
  // SSYRK over the chunk, added into float64 (as model::AccumulateLower).
  absl::Status AccumulateHessian(const float* x, int64_t n, int64_t tokens, int which) {
    if (hessians_ == nullptr) return absl::OkStatus();
    const float one = 1.0f, zero = 0.0f;
    if (absl::Status s = CublasStatus(
            lib_,
            lib_.cublasSsyrk(ctx_.blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(n),
                             static_cast<int>(tokens), &one, x, static_cast<int>(n), &zero,
                             syrk_scratch_.data(), static_cast<int>(n)),
            "cublasSsyrk(Hessian)");
        !s.ok())
      return s;
    return Launched(
        ctx_.kernels->AddLowerF64(syrk_scratch_.data(), n, sums_[which].data(), ctx_.stream),
        "Hessian sum kernel");
  }

  const CudaContext ctx_;
  const CudaLibraries& lib_;
  const model::ModelConfig& c_;
  const int64_t seq_len_;
  model::BlockHessians* const hessians_;
  DeviceBuffer<float> q_, k_, v_, o_, gate_, up_, down_;
  DeviceBuffer<float> input_norm_, post_norm_, q_bias_, k_bias_, v_bias_, cos_, sin_;
  DeviceBuffer<double> sums_[4];  // q_proj, o_proj, gate_proj, down_proj inputs
  DeviceBuffer<float> syrk_scratch_;
  Activations act_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<backend::BlockRunner>> PrepareCudaBlock(
    const CudaContext& context, const model::ModelConfig& config,
    const model::BlockWeights& weights, int64_t seq_len, model::BlockHessians* hessians) {
  if (seq_len <= 0 || config.num_kv_heads <= 0 || config.num_heads % config.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("block forward: seq_len ", seq_len, ", ",
                                                   config.num_heads, " heads over ",
                                                   config.num_kv_heads, " key/value heads"));
  }
  if (config.qk_norm) {
    return absl::UnimplementedError(
        "block forward: the q/k head norms of Qwen3 run on the CPU backend only; use --device cpu");
  }
  if (config.is_moe()) {
    return absl::UnimplementedError(absl::StrCat("block forward: the mixture-of-experts blocks of ",
                                                 config.architecture,
                                                 " run on the CPU backend only; use --device cpu"));
  }
  if (hessians != nullptr && hessians->float64_reference) {
    return absl::UnimplementedError(
        "block forward: the float64 reference Hessians run on the CPU backend only");
  }
  auto runner = std::make_unique<CudaBlockRunner>(context, config, seq_len, hessians);
  if (absl::Status s = runner->Prepare(weights); !s.ok()) return s;
  return std::unique_ptr<backend::BlockRunner>(std::move(runner));
}

}  // namespace caldera::cuda
