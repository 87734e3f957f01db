// rnnkit's native call: one C++ autograd function that runs a fused kernel's compiled forward
// and backward (numba cfuncs, see rnnkit/kernels/native.py) with no Python in between.
//
// The function knows no family. A Recipe, built once per kernel and sizes in Python, says how to
// fill each compiled call's argument block (one int64 array: scalars, then an address and three
// dimensions per array): which positions take the addresses of the call's input tensors, of
// tensors allocated for the call, of the forward's saved tensors and of the incoming gradients.
// Everything else in the block (sizes, flags, the addresses of constant arrays) is filled in
// Python and copied as is.
#include <ATen/EmptyTensor.h>
#include <torch/csrc/autograd/functions/basic_ops.h>
#include <torch/csrc/Storage.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

typedef void (*Entry)(int64_t*);
typedef int (*GetThreads)();
typedef void (*SetThreads)(int);
GetThreads get_blas_threads = nullptr;
SetThreads set_blas_threads = nullptr;

// Large buffers come from a pool of freed ones of the same size. glibc hands large freed blocks
// back to the system, so a fresh one costs a page fault per 4 KB on every call (the Python path
// pools its arrays for the same reason). A buffer returns to the pool when its tensor's storage
// dies, which for a returned output or gradient is whenever the caller lets go of it. The pool
// keeps at most `limit` bytes (256 MB unless set) of free buffers, the most recently freed: when a
// process moves on to other sizes, the buffers of the old ones go first.
constexpr size_t kPooledMinBytes = size_t(64) << 10;
constexpr size_t kAlignment = 64;

class BufferPool final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    void* data = nullptr;
    if (bytes > 0) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
          if (it->bytes == bytes) {
            data = it->data;
            free_.erase(std::next(it).base());
            free_bytes_ -= bytes;
            break;
          }
        }
      }
      if (data == nullptr) {
        // A header before the data keeps the size for the deleter.
        data = std::aligned_alloc(kAlignment, kAlignment + round_up(bytes));
        TORCH_CHECK(data != nullptr, "rnnkit native call: out of memory allocating ", bytes,
                    " bytes");
        *static_cast<size_t*>(data) = bytes;
      }
    }
    void* payload = data == nullptr ? nullptr : static_cast<char*>(data) + kAlignment;
    return {payload, data, &BufferPool::release, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool();  // never destroyed: tensors may outlive exit
    return *pool;
  }

  size_t free_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_bytes_;
  }

  // Sets the most bytes of free buffers kept; returns the previous limit.
  size_t set_limit(size_t bytes) {
    std::vector<void*> evicted;
    size_t previous;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      previous = limit_;
      limit_ = bytes;
      evict_over_limit(&evicted);
    }
    for (void* old : evicted) std::free(old);
    return previous;
  }

 private:
  static size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

  static void release(void* data) {
    if (data == nullptr) return;
    BufferPool& pool = instance();
    size_t bytes = *static_cast<size_t*>(data);
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(pool.mutex_);
      pool.free_.push_back({bytes, data});
      pool.free_bytes_ += bytes;
      pool.evict_over_limit(&evicted);
    }
    for (void* old : evicted) std::free(old);
  }

  // Drops the oldest free buffers until the pool is within its limit (under the lock; the
  // caller frees them after it).
  void evict_over_limit(std::vector<void*>* evicted) {
    while (free_bytes_ > limit_) {
      free_bytes_ -= free_.front().bytes;
      evicted->push_back(free_.front().data);
      free_.pop_front();
    }
  }

  struct Cached {
    size_t bytes;
    void* data;
  };
  std::mutex mutex_;
  std::deque<Cached> free_;  // the oldest first
  size_t free_bytes_ = 0;
  size_t limit_ = size_t(256) << 20;
};

// An uninitialised CPU tensor: from the pool from kPooledMinBytes up, else a plain allocation
// (at::detail::empty_cpu skips the dispatcher).
Tensor empty_buffer(at::IntArrayRef shape, at::ScalarType dtype) {
  int64_t count = c10::multiply_integers(shape);
  if (static_cast<size_t>(count) * c10::elementSize(dtype) < kPooledMinBytes) {
    return at::detail::empty_cpu(shape, dtype);
  }
  return at::detail::empty_generic(shape, &BufferPool::instance(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU), dtype,
                                   std::nullopt);
}

// Elements `offset ..` of the contiguous `block`, seen as a contiguous tensor of `sizes`: a tensor
// of its own on the block's storage, made without the dispatcher. A view (view, narrow, view)
// took three dispatched ops per gradient, and the layer-norm LSTM's six gradients that share one
// allocation cost more than its whole kernels at B=1, T=10, H=32 (measured with torch's profiler).
Tensor part_of(const Tensor& block, int64_t offset, at::IntArrayRef sizes) {
  Tensor part = at::detail::make_tensor<c10::TensorImpl>(c10::Storage(block.storage()),
                                                         block.key_set(), block.dtype());
  part.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
  part.unsafeGetTensorImpl()->set_storage_offset(block.storage_offset() + offset);
  return part;
}

// `target` = `grad`, contiguous. A gradient that is one value broadcast (every stride 0, as the
// gradient of a sum or a mean arrives) is filled without the dispatcher and TensorIterator.
void copy_gradient(const Tensor& grad, Tensor& target) {
  bool broadcast = grad.numel() > 0;
  for (int64_t stride : grad.strides()) broadcast = broadcast && stride == 0;
  if (broadcast && grad.scalar_type() == at::ScalarType::Float) {
    std::fill_n(target.data_ptr<float>(), target.numel(), *grad.data_ptr<float>());
  } else if (broadcast && grad.scalar_type() == at::ScalarType::Double) {
    std::fill_n(target.data_ptr<double>(), target.numel(), *grad.data_ptr<double>());
  } else {
    target.copy_(grad);
  }
}

// Calls run with a companion, and those whose two tasks ran on two threads (for tests).
std::atomic<int64_t> companion_calls{0}, concurrent_calls{0};

// A call's two tasks (an entry and its companion, or two halves of the batch) on two cores, or
// one after the other on the calling thread while the second core is held up.
//
// When another process keeps the second core busy, the task that waits for it holds up the whole
// call: the pool's thread may not run for a scheduler slice, 8-24 ms (measured beside one busy
// process, at B=1 and sizes that take 0.1-1 ms alone), and an entry spins meanwhile for the
// companion's chunks. So a call whose second task started late (by `late_after_ns` and a
// quarter of the first task's time), or ended late after the first (by `late_after_ns` and half
// of it), makes the calls of the next `alone_for` run both tasks on the calling thread (in the
// order that lets an entry's waits return, as parallel_for runs them given one thread); each
// further late call doubles that span, up to kAloneMaxNs, and a call on time resets it.
constexpr int64_t kAloneMinNs = 20'000'000, kAloneMaxNs = 2'000'000'000;
std::atomic<int64_t> late_after_ns{500'000};  // how late is late; 0: every call (for tests)
std::atomic<int64_t> alone_until{0}, alone_for{kAloneMinNs};
std::atomic<int64_t> late_calls{0}, alone_calls{0};  // for tests

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `task(0)` and `task(1)` at once as two tasks of torch's pool (see Part::run for why
// torch's), or one after the other on this thread, `task(1)` first if `second_first`, when the
// pool gives one thread or the second core was held up lately. True when they ran on two threads.
template <typename Task>
bool run_two(bool second_first, const Task& task) {
  auto in_order = [&]() {
    task(second_first ? 1 : 0);
    task(second_first ? 0 : 1);
  };
  int64_t start = now_ns();
  if (start < alone_until.load(std::memory_order_relaxed)) {
    alone_calls.fetch_add(1, std::memory_order_relaxed);
    in_order();
    return false;
  }
  int64_t began[2] = {0, 0}, ended[2] = {0, 0};
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    if (end - begin == 2) {
      in_order();
      return;
    }
    began[begin] = now_ns();
    task(static_cast<int>(begin));
    ended[begin] = now_ns();
  });
  if (began[1] == 0) return false;  // one thread ran both
  // Task 0 runs on this thread, task 1 on the pool's. A forward's companion ends long before its
  // entry, a backward's a chunk's GEMMs after it, the second half about when the first does.
  int64_t late = late_after_ns.load(std::memory_order_relaxed), own = ended[0] - began[0];
  bool held_up = late == 0 || began[1] - start > late + own / 4 ||
                 ended[1] - ended[0] > late + own / 2;
  if (held_up) {
    late_calls.fetch_add(1, std::memory_order_relaxed);
    int64_t span = alone_for.load(std::memory_order_relaxed);
    alone_until.store(now_ns() + span, std::memory_order_relaxed);
    alone_for.store(std::min(2 * span, kAloneMaxNs), std::memory_order_relaxed);
  } else {
    alone_for.store(kAloneMinNs, std::memory_order_relaxed);
  }
  return true;
}

enum Source : int64_t {
  INPUT = 0, ALLOCATED = 1, SAVED = 2, GRADIENT = 3, GRADIENT_COPY = 4, SYNC = 5
};

// One compiled call: its entry point, block template and where the per-call addresses go.
struct Part {
  Entry entry = nullptr;
  // Run next to `entry` when set (see rnnkit/kernels/_sync.py), else nothing. On one thread it
  // runs first when `companion_first`, else after `entry`.
  Entry companion = nullptr;
  bool companion_first = false;
  std::vector<int64_t> block;
  std::vector<int64_t> slots, sources, indices;  // block[slots[k]] = address of sources[k][indices[k]]
  std::vector<int64_t> offsets;  // ... plus offsets[k] elements
  std::vector<std::vector<int64_t>> allocations;  // shapes of the tensors allocated per call

  void set(int64_t entry_address, int64_t companion_address, bool companion_first_,
           std::vector<int64_t> block_, std::vector<int64_t> slots_,
           std::vector<int64_t> sources_, std::vector<int64_t> indices_,
           std::vector<int64_t> offsets_, std::vector<std::vector<int64_t>> allocations_) {
    TORCH_CHECK(slots_.size() == sources_.size() && slots_.size() == indices_.size() &&
                    slots_.size() == offsets_.size(),
                "rnnkit native recipe: slots, sources, indices and offsets differ in length");
    for (int64_t slot : slots_) {
      TORCH_CHECK(slot >= 0 && slot < static_cast<int64_t>(block_.size()),
                  "rnnkit native recipe: slot ", slot, " outside the block");
    }
    entry = reinterpret_cast<Entry>(entry_address);
    companion = reinterpret_cast<Entry>(companion_address);
    companion_first = companion_first_;
    block = std::move(block_);
    slots = std::move(slots_);
    sources = std::move(sources_);
    indices = std::move(indices_);
    offsets = std::move(offsets_);
    allocations = std::move(allocations_);
  }

  // The call's allocations; those defined in `given` (by index) are taken from it instead.
  std::vector<Tensor> allocate(const at::TensorOptions& options,
                               const std::vector<Tensor>& given = {}) const {
    std::vector<Tensor> tensors;
    tensors.reserve(allocations.size());
    auto dtype = options.dtype().toScalarType();
    for (size_t k = 0; k < allocations.size(); ++k) {
      bool preset = k < given.size() && given[k].defined();
      tensors.push_back(preset ? given[k] : empty_buffer(allocations[k], dtype));
    }
    return tensors;
  }

  // Fills the block from the tensors of each source and runs the compiled call (and its
  // companion: the two as two tasks of torch's intra-op thread pool).
  void run(const std::vector<const std::vector<Tensor>*>& from) const {
    std::vector<int64_t> filled(block);
    alignas(64) int64_t sync[8] = {0};  // the two entries' progress counters
    for (size_t k = 0; k < slots.size(); ++k) {
      if (sources[k] == SYNC) {
        filled[slots[k]] = reinterpret_cast<int64_t>(sync);
        continue;
      }
      const Tensor& tensor = (*from[sources[k]])[indices[k]];
      filled[slots[k]] = reinterpret_cast<int64_t>(tensor.data_ptr()) +
                         offsets[k] * static_cast<int64_t>(tensor.element_size());
    }
    if (companion == nullptr) {
      entry(filled.data());
      return;
    }
    // torch's pool, not a thread of rnnkit's own: after torch's ops its threads spin-wait for
    // more work, and a second thread of ours would share the other core with one of them (an
    // LSTM's forward and backward at B=32, T=100, H=128 ran 6-16% slower that way than on one
    // core, measured). Given one thread (torch's count, or a call from inside a parallel
    // region), parallel_for runs both tasks in one call, in the order that lets the entry's
    // waits return.
    int64_t* arguments = filled.data();
    companion_calls.fetch_add(1, std::memory_order_relaxed);
    if (run_two(companion_first, [&](int k) { (k == 0 ? entry : companion)(arguments); })) {
      concurrent_calls.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

struct Recipe;
using RecipePtr = c10::intrusive_ptr<Recipe>;

struct Recipe : torch::CustomClassHolder {
  // A call split by batch rows (see rnnkit/kernels/_entries.py, `halves`): when `halves` holds two
  // recipes, each runs its `rows` of the batch, at once on two threads, and the parts below
  // are theirs, not this recipe's.
  std::vector<RecipePtr> halves;
  int64_t rows[2] = {0, 0};
  std::vector<int64_t> input_dims;  // per input, its batch dimension; -1 for a weight
  std::vector<int64_t> returned_dims;  // per returned tensor, its batch dimension
  std::vector<std::vector<int64_t>> returned_shapes;  // the whole call's returned tensors
  Part forward;
  Part backward[2];  // without and with the first input's (x's) gradient
  std::vector<int64_t> returned;  // the forward's allocations returned, in order
  std::vector<int64_t> saved;  // the forward's allocations the backward reads
  // Per input: the backward allocation holding its gradient (at gradient_offset), -2 - k for the
  // copy of the k-th incoming gradient (an initial state's), or -1 for none.
  std::vector<int64_t> gradient_of, gradient_offset;
  std::vector<Tensor> constants;  // arrays whose addresses the block templates hold
  int64_t threads = 1;
  // The sizes of the first inputs (x, then the weights) the blocks were laid out for, and their
  // dtype; a call whose inputs differ is refused (see `run`).
  std::vector<std::vector<int64_t>> expected_sizes;
  at::ScalarType expected_dtype = at::ScalarType::Undefined;

  // Whether `inputs` are CPU tensors of the expected dtype and sizes (the weights contiguous).
  bool fits(const std::vector<Tensor>& inputs) const {
    if (inputs.size() < expected_sizes.size()) return false;
    for (size_t k = 0; k < expected_sizes.size(); ++k) {
      const Tensor& tensor = inputs[k];
      if (!tensor.defined() || !tensor.device().is_cpu() ||
          tensor.scalar_type() != expected_dtype || tensor.sizes() != expected_sizes[k] ||
          (k > 0 && !tensor.is_contiguous())) {
        return false;
      }
    }
    return true;
  }

  // Where the `k`-th half's rows start, for a recipe split in halves.
  int64_t half_start(int k) const { return k == 0 ? 0 : rows[0]; }

  // The shape of the `index`-th returned tensor.
  std::vector<int64_t> returned_shape(size_t index) const {
    return halves.empty() ? forward.allocations[returned[index]] : returned_shapes[index];
  }
};

void use_blas_threads(int64_t threads) {
  if (get_blas_threads != nullptr && get_blas_threads() != threads) {
    set_blas_threads(static_cast<int>(threads));
  }
}

// The forward without autograd: returns the returned allocations, and the saved ones in `kept`.
std::vector<Tensor> run_halves_forward(const Recipe& recipe, const std::vector<Tensor>& inputs,
                                       std::vector<Tensor>* kept);

std::vector<Tensor> run_forward(const Recipe& recipe, const std::vector<Tensor>& inputs,
                                std::vector<Tensor>* kept) {
  if (!recipe.halves.empty()) return run_halves_forward(recipe, inputs, kept);
  std::vector<Tensor> allocated = recipe.forward.allocate(inputs[0].options());
  use_blas_threads(recipe.threads);
  recipe.forward.run({&inputs, &allocated});
  std::vector<Tensor> results;
  results.reserve(recipe.returned.size());
  for (int64_t index : recipe.returned) results.push_back(allocated[index]);
  if (kept != nullptr) {
    for (int64_t index : recipe.saved) kept->push_back(allocated[index]);
  }
  return results;
}

// The incoming gradients as `part` reads them: `incoming` holds those it reads (GRADIENT), each
// contiguous, and `copies` those its kernel writes into (GRADIENT_COPY, the final states', which
// become the initial states'). An output that was not used gets zeros.
void take_incoming(const Recipe& recipe, const Part& part, const variable_list& grads,
                   at::ScalarType dtype, std::vector<Tensor>* incoming,
                   std::vector<Tensor>* copies) {
  for (size_t k = 0; k < part.sources.size(); ++k) {
    if (part.sources[k] != GRADIENT && part.sources[k] != GRADIENT_COPY) continue;
    int64_t index = part.indices[k];
    const Tensor& grad = grads[index];
    Tensor& target = part.sources[k] == GRADIENT ? (*incoming)[index] : (*copies)[index];
    if (!grad.defined()) {  // zeros, without the dispatcher
      target = empty_buffer(recipe.returned_shape(index), dtype);
      std::memset(target.data_ptr(), 0, target.nbytes());
    } else if (part.sources[k] == GRADIENT && grad.is_contiguous()) {
      target = grad;
    } else {  // a contiguous copy; for GRADIENT_COPY the kernel writes into it
      target = empty_buffer(grad.sizes(), grad.scalar_type());
      copy_gradient(grad, target);
    }
  }
}

// With create_graph=True and gradients that carry a graph, the results carry a node that refuses
// to be differentiated, as torch's once_differentiable makes: the compiled backward has no
// backward of its own. `result[0]` is the recipe's, always undefined.
void refuse_double_backward(const variable_list& grads, variable_list* result) {
  bool graph = false;
  if (torch::autograd::GradMode::is_enabled()) {
    for (const auto& grad : grads) graph = graph || (grad.defined() && grad.requires_grad());
  }
  if (!graph) return;
  variable_list defined;
  for (size_t i = 1; i < result->size(); ++i) {
    if ((*result)[i].defined()) defined.push_back((*result)[i].detach().requires_grad_(true));
  }
  variable_list wrapped =
      torch::autograd::DelayedError(
          "trying to differentiate twice rnnkit's fused kernels, whose backward is "
          "once_differentiable; run the layer with backend='reference' for higher-order "
          "gradients",
          static_cast<int>(defined.size()))
          .apply(std::move(defined));
  size_t k = 0;
  for (size_t i = 1; i < result->size(); ++i) {
    if ((*result)[i].defined()) (*result)[i] = wrapped[k++];
  }
}

// `count` rows of `tensor` from `start` along its batch dimension `dim`, or `tensor` itself for
// -1 (a weight) or when undefined. A view, contiguous as the recipes take them: every dimension
// before the batch's has size 1 (x (B, T, I), states (B, s) or (1, B, s), masks (B, ·)).
Tensor rows_of(const Tensor& tensor, int64_t dim, int64_t start, int64_t count) {
  return dim < 0 || !tensor.defined() ? tensor : tensor.narrow(dim, start, count);
}

// `rows_of` each of `tensors`, the k-th along `dims[k]`.
std::vector<Tensor> rows_of_each(const std::vector<Tensor>& tensors,
                                 const std::vector<int64_t>& dims, int64_t start, int64_t count) {
  std::vector<Tensor> rows;
  rows.reserve(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    rows.push_back(rows_of(tensors[k], dims[k], start, count));
  }
  return rows;
}

// Calls split in halves, and those whose halves ran on two threads (for tests).
std::atomic<int64_t> halved_calls{0}, concurrent_halves{0};

// `task(0)` and `task(1)`, the two halves of a call, each on one BLAS thread, through `run_two`.
template <typename Task>
void run_both(const Task& task) {
  use_blas_threads(1);
  halved_calls.fetch_add(1, std::memory_order_relaxed);
  if (run_two(false, task)) concurrent_halves.fetch_add(1, std::memory_order_relaxed);
}

// The forward of both autograd functions below: runs the recipe and keeps what the backward
// reads.
variable_list forward_keeping(AutogradContext* ctx, const RecipePtr& recipe,
                              at::TensorList inputs) {
  std::vector<Tensor> given(inputs.begin(), inputs.end());
  std::vector<Tensor> kept;
  variable_list results = run_forward(*recipe, given, &kept);
  // The inputs (version-checked when the backward reads them), then the forward's saved work.
  given.insert(given.end(), kept.begin(), kept.end());
  ctx->save_for_backward(given);
  ctx->saved_data["recipe"] = c10::IValue::make_capsule(recipe);
  ctx->set_materialize_grads(false);  // an unused output's gradient is made in the backward
  return results;
}

struct NativeSequence : public torch::autograd::Function<NativeSequence> {
  static variable_list forward(AutogradContext* ctx, RecipePtr recipe, at::TensorList inputs) {
    return forward_keeping(ctx, recipe, inputs);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto holder = ctx->saved_data["recipe"].toCapsule();
    const Recipe& recipe = *static_cast<Recipe*>(holder.get());
    std::vector<Tensor> inputs = ctx->get_saved_variables();
    std::vector<Tensor> kept(inputs.begin() + recipe.gradient_of.size(), inputs.end());
    inputs.resize(recipe.gradient_of.size());
    // Edges count the tensors only: edge i is the i-th input tensor (x first).
    bool needs_x = ctx->needs_input_grad(0);
    const Part& part = recipe.backward[needs_x ? 1 : 0];
    std::vector<Tensor> incoming(grads.size()), copies(grads.size());
    take_incoming(recipe, part, grads, inputs[0].scalar_type(), &incoming, &copies);
    std::vector<Tensor> allocated = part.allocate(inputs[0].options());
    use_blas_threads(recipe.threads);
    part.run({&inputs, &allocated, &kept, &incoming, &copies});
    variable_list result(1 + inputs.size());  // the recipe's gradient stays undefined
    for (size_t i = 0; i < inputs.size(); ++i) {
      int64_t index = recipe.gradient_of[i];
      if (index == -1 || !ctx->needs_input_grad(i)) continue;
      if (index < -1) {  // an initial state's: the kernel leaves it in its final state's copy
        result[1 + i] = copies[-2 - index];
        continue;
      }
      const Tensor& block = allocated[index];
      if (recipe.gradient_offset[i] == 0 && block.sizes() == inputs[i].sizes()) {
        result[1 + i] = block;
      } else {  // a part of a larger allocation (the layer norms' gradients share one)
        result[1 + i] = part_of(block, recipe.gradient_offset[i], inputs[i].sizes());
      }
    }
    refuse_double_backward(grads, &result);
    return result;
  }
};

// The forward of a recipe split in halves (see Recipe::halves), without autograd: each half's
// recipe runs on its rows of the batch-major inputs and writes its rows of the returned
// tensors, the two at once as two tasks of torch's pool (one after the other when it has one
// thread). Each half's saved allocations go to `kept`, the first half's first.
std::vector<Tensor> run_halves_forward(const Recipe& recipe, const std::vector<Tensor>& inputs,
                                       std::vector<Tensor>* kept) {
  auto dtype = inputs[0].scalar_type();
  std::vector<Tensor> results;
  for (const auto& shape : recipe.returned_shapes) results.push_back(empty_buffer(shape, dtype));
  std::vector<Tensor> given[2], allocated[2];
  for (int k = 0; k < 2; ++k) {
    const Recipe& half = *recipe.halves[k];
    int64_t start = recipe.half_start(k), rows = recipe.rows[k];
    given[k] = rows_of_each(inputs, recipe.input_dims, start, rows);
    std::vector<Tensor> mine = rows_of_each(results, recipe.returned_dims, start, rows);
    std::vector<Tensor> preset(half.forward.allocations.size());
    for (size_t r = 0; r < half.returned.size(); ++r) preset[half.returned[r]] = mine[r];
    allocated[k] = half.forward.allocate(inputs[0].options(), preset);
  }
  run_both([&](int k) { recipe.halves[k]->forward.run({&given[k], &allocated[k]}); });
  if (kept != nullptr) {
    for (int k = 0; k < 2; ++k) {
      for (int64_t index : recipe.halves[k]->saved) kept->push_back(allocated[k][index]);
    }
  }
  return results;
}

// A recipe split in halves (see Recipe::halves): the same forward, and a backward of its own.
struct NativeHalves : public torch::autograd::Function<NativeHalves> {
  static variable_list forward(AutogradContext* ctx, RecipePtr recipe, at::TensorList inputs) {
    return forward_keeping(ctx, recipe, inputs);
  }

  // Each half's backward on its rows of the incoming gradients, at once; x's and the initial
  // states' gradients are the halves' rows of one tensor, the weights' the sum of the two.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto holder = ctx->saved_data["recipe"].toCapsule();
    const Recipe& recipe = *static_cast<Recipe*>(holder.get());
    const Recipe* halves[2] = {recipe.halves[0].get(), recipe.halves[1].get()};
    std::vector<Tensor> inputs = ctx->get_saved_variables();
    size_t count = recipe.gradient_of.size(), first = halves[0]->saved.size();
    std::vector<Tensor> kept[2] = {
        std::vector<Tensor>(inputs.begin() + count, inputs.begin() + count + first),
        std::vector<Tensor>(inputs.begin() + count + first, inputs.end())};
    inputs.resize(count);
    bool needs_x = ctx->needs_input_grad(0);
    int with_x = needs_x ? 1 : 0;
    std::vector<Tensor> incoming(grads.size()), copies(grads.size());
    take_incoming(recipe, halves[0]->backward[with_x], grads, inputs[0].scalar_type(), &incoming,
                  &copies);
    int64_t x_gradient = recipe.gradient_of[0];
    Tensor d_x;
    if (needs_x && x_gradient >= 0) d_x = empty_buffer(inputs[0].sizes(), inputs[0].scalar_type());
    std::vector<Tensor> given[2], taken[2], copied[2], allocated[2];
    for (int k = 0; k < 2; ++k) {
      int64_t start = recipe.half_start(k), rows = recipe.rows[k];
      given[k] = rows_of_each(inputs, recipe.input_dims, start, rows);
      taken[k] = rows_of_each(incoming, recipe.returned_dims, start, rows);
      copied[k] = rows_of_each(copies, recipe.returned_dims, start, rows);
      const Part& part = halves[k]->backward[with_x];
      std::vector<Tensor> preset(part.allocations.size());
      if (d_x.defined()) preset[x_gradient] = rows_of(d_x, 0, start, rows);
      allocated[k] = part.allocate(inputs[0].options(), preset);
    }
    run_both([&](int k) {
      halves[k]->backward[with_x].run({&given[k], &allocated[k], &kept[k], &taken[k],
                                       &copied[k]});
    });
    variable_list result(1 + inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      int64_t index = recipe.gradient_of[i];
      if (index == -1 || !ctx->needs_input_grad(i)) continue;
      if (index < -1) {  // an initial state's, left in its final state's copy
        result[1 + i] = copies[-2 - index];
      } else if (recipe.input_dims[i] >= 0) {  // x's
        result[1 + i] = d_x;
      } else {  // a weight's: the halves' sum, in the first half's allocation
        int64_t offset = recipe.gradient_offset[i];
        Tensor sum = part_of(allocated[0][index], offset, inputs[i].sizes());
        sum.add_(part_of(allocated[1][index], offset, inputs[i].sizes()));
        result[1 + i] = sum;
      }
    }
    refuse_double_backward(grads, &result);
    return result;
  }
};

// Runs `recipe` on `inputs` (x first, then the weights it tracks), through autograd when grad
// mode is on and an input requires grad. Returns no tensors, having run nothing, when x or a
// weight is not what the recipe was laid out for (the caller then binds its kernel again): so
// the caller need not check their layout on every call.
std::vector<Tensor> run(const RecipePtr& recipe, std::vector<Tensor> inputs) {
  TORCH_CHECK(inputs.size() == recipe->gradient_of.size(), "inputs: the recipe takes ",
              recipe->gradient_of.size(), " tensors (x, the weights, the states), got ",
              inputs.size());
  if (!recipe->fits(inputs)) return {};
  if (!inputs[0].is_contiguous()) inputs[0] = inputs[0].contiguous();
  bool tracked = false;
  if (torch::autograd::GradMode::is_enabled()) {
    for (const auto& tensor : inputs) tracked = tracked || tensor.requires_grad();
  }
  if (!tracked) return run_forward(*recipe, inputs, nullptr);
  if (!recipe->halves.empty()) return NativeHalves::apply(recipe, at::TensorList(inputs));
  return NativeSequence::apply(recipe, at::TensorList(inputs));
}

// -- streaming steps (rnnkit/kernels/stepping.py) ------------------------------------------------
// One cell's single steps under no_grad: its compiled step entry (rnnkit/kernels/_step_loops.py),
// the packed weights it reads, and what must not change for those to stay right. A step at batch
// 1 is about 2 us of compiled work; Python checking the arguments and handing out the outputs
// took more than twice that, so here the whole call, checks included, is C++.
struct Stepper {
  enum Form : int64_t { STEP = 0, TIMESTEP = 1, TIMESTEP_SEQUENCE = 2 };
  Entry entry = nullptr;
  Tensor packed;
  at::ScalarType dtype = at::ScalarType::Undefined;
  int64_t features = 0, hidden = 0, n_state = 0, mode = 0;
  // Compared by address only: the Python side forgets the stepper when the cell dies.
  PyObject* cell = nullptr;
  py::object parameters;  // the cell's `_parameters` dict
  std::vector<py::object> names, params;  // the weights: each the registered parameter, unchanged
  std::vector<Tensor> tensors;
  // Held so that no new tensor can take their addresses (`.data =` swaps a tensor's storage).
  std::vector<c10::Storage> storages;
  std::vector<int64_t> versions;
  std::vector<const void*> addresses;
  py::object activation_name, recurrent_name, activation, recurrent_activation;

  // The outputs of one step: one allocation holding the state's tensors, then the output's copy
  // of h unless the form is STEP. Made once and handed out again (the same Python objects) once
  // nothing outside can see them (`reusable`).
  struct Slot {
    py::object tensors[3];
    py::object storage;  // the allocation's Python handle: the one its users would get
    char* address = nullptr;
    // Their references when nobody else held them, counted by Python (the handle's, then each
    // tensor's) and by torch (the storage's users, then each tensor's): torch's own share of
    // them is its business, so they are compared with these, not with fixed numbers.
    Py_ssize_t python_refs[4] = {0, 0, 0, 0};
    int64_t torch_refs[4] = {0, 0, 0, 0};
  };
  // The two slots a stream alternates between, for one batch size and form: a stream that drops
  // each state once the next step has returned it allocates nothing.
  int64_t pool_batch = -1, pool_form = -1;
  Slot slots[2];
  int next_slot = 0;

  Stepper(int64_t entry_address, Tensor packed_, int64_t features_, int64_t hidden_,
          int64_t n_state_, int64_t mode_, py::handle cell_, py::object parameters_,
          std::vector<py::object> names_, py::object activation_,
          py::object recurrent_activation_)
      : entry(reinterpret_cast<Entry>(entry_address)), packed(std::move(packed_)),
        dtype(packed.scalar_type()), features(features_), hidden(hidden_), n_state(n_state_),
        mode(mode_), cell(cell_.ptr()), parameters(std::move(parameters_)),
        names(std::move(names_)), activation_name(py::str("activation")),
        recurrent_name(py::str("recurrent_activation")), activation(std::move(activation_)),
        recurrent_activation(std::move(recurrent_activation_)) {
    TORCH_CHECK(packed.is_contiguous() && packed.dim() == 2, "packed: expected a contiguous 2-D "
                "tensor, got sizes ", packed.sizes());
    TORCH_CHECK(n_state == 1 || n_state == 2, "n_state: expected 1 or 2, got ", n_state);
    for (const auto& name : names) {
      PyObject* param = PyDict_GetItemWithError(parameters.ptr(), name.ptr());
      TORCH_CHECK(param != nullptr && THPVariable_Check(param), "parameters: no tensor named ",
                  py::str(name).cast<std::string>());
      params.push_back(py::reinterpret_borrow<py::object>(param));
      const Tensor& tensor = THPVariable_Unpack(param);
      tensors.push_back(tensor);
      storages.push_back(tensor.storage());
      versions.push_back(tensor._version());
      addresses.push_back(tensor.data_ptr());
    }
  }

  // Whether `cell_` still holds the same parameters, unchanged, and the same activations.
  bool valid(PyObject* cell_) const {
    if (cell_ != cell) return false;
    for (size_t k = 0; k < names.size(); ++k) {
      if (PyDict_GetItemWithError(parameters.ptr(), names[k].ptr()) != params[k].ptr() ||
          tensors[k]._version() != versions[k] || tensors[k].data_ptr() != addresses[k]) {
        PyErr_Clear();
        return false;
      }
    }
    return same_attribute(cell_, activation_name, activation) &&
           same_attribute(cell_, recurrent_name, recurrent_activation);
  }

  static bool same_attribute(PyObject* object, const py::object& name, const py::object& value) {
    PyObject* found = PyObject_GetAttr(object, name.ptr());
    if (found == nullptr) {
      PyErr_Clear();
      return false;
    }
    Py_DECREF(found);  // compared by identity only; `value` keeps it alive
    return found == value.ptr();
  }

  // A slot for a step's outputs: the one the step before last used, if `reusable`, else a new
  // one in its place (whatever the caller still holds of the old one stays theirs).
  Slot& take_slot(int64_t batch, int64_t form, int64_t n_out) {
    if (batch != pool_batch || form != pool_form) {
      slots[0] = Slot();
      slots[1] = Slot();
      pool_batch = batch;
      pool_form = form;
    }
    Slot& slot = slots[next_slot];
    next_slot = 1 - next_slot;
    if (!reusable(slot, n_out, form)) {
      slot = new_slot(batch, form, n_out);
      count_references(&slot, n_out);  // here, where nothing else holds them yet
    }
    return slot;
  }

  Slot new_slot(int64_t batch, int64_t form, int64_t n_out) const {
    int64_t size = batch * hidden;
    Tensor block = at::detail::empty_cpu({n_out * size}, dtype);
    Slot slot;
    for (int64_t k = 0; k < n_out; ++k) {
      bool sequence = k == n_state && form == TIMESTEP_SEQUENCE;
      std::vector<int64_t> sizes = sequence ? std::vector<int64_t>{batch, 1, hidden}
                                            : std::vector<int64_t>{batch, hidden};
      slot.tensors[k] = py::reinterpret_steal<py::object>(
          THPVariable_Wrap(part_of(block, k * size, sizes)));
    }
    slot.storage = py::reinterpret_steal<py::object>(THPStorage_Wrap(block.storage()));
    slot.address = static_cast<char*>(block.data_ptr());
    return slot;
  }

  static void count_references(Slot* slot, int64_t n_out) {
    slot->python_refs[0] = Py_REFCNT(slot->storage.ptr());
    slot->torch_refs[0] = THPStorage_Unpack(slot->storage.ptr()).use_count();
    for (int64_t k = 0; k < n_out; ++k) {
      slot->python_refs[k + 1] = Py_REFCNT(slot->tensors[k].ptr());
      slot->torch_refs[k + 1] = THPVariable_Unpack(slot->tensors[k].ptr()).use_count();
    }
  }

  // Whether nothing outside this stepper can see `slot`'s memory, so that it can be written
  // again, and its tensors are as they were made. Its tensors and their storage's handle are held
  // by nobody else: no Python reference (a list, a result, a NumPy array's base), no weak one, no
  // C++ one (autograd's saved tensors, DLPack), no other tensor on the storage (a view, `.data`).
  // And no write, metadata change (`unsqueeze_`, `set_`) or move of the memory (`share_memory_`,
  // a storage's `resize_`) happened through them.
  bool reusable(const Slot& slot, int64_t n_out, int64_t form) const {
    if (slot.address == nullptr) return false;
    PyObject* handle = slot.storage.ptr();
    const c10::Storage& storage = THPStorage_Unpack(handle);
    if (Py_REFCNT(handle) != slot.python_refs[0] || weakly_referenced(handle) ||
        storage.use_count() != slot.torch_refs[0] || storage.data() != slot.address) {
      return false;
    }
    int64_t size = pool_batch * hidden;
    for (int64_t k = 0; k < n_out; ++k) {
      PyObject* object = slot.tensors[k].ptr();
      if (Py_REFCNT(object) != slot.python_refs[k + 1] || weakly_referenced(object)) return false;
      const Tensor& tensor = THPVariable_Unpack(object);
      bool sequence = k == n_state && form == TIMESTEP_SEQUENCE;
      if (tensor.use_count() != slot.torch_refs[k + 1] || tensor._version() != 0 ||
          tensor.requires_grad() || tensor.storage_offset() != k * size ||
          !tensor.is_contiguous() ||
          tensor.dim() != (sequence ? 3 : 2) || tensor.numel() != size ||
          !tensor.storage().is_alias_of(storage)) {
        return false;
      }
    }
    return true;
  }

  // Whether a weak reference to `object` is alive (CPython keeps a list of them in the object,
  // emptied as they die).
  static bool weakly_referenced(PyObject* object) {
    Py_ssize_t offset = Py_TYPE(object)->tp_weaklistoffset;
    return offset != 0 && *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(object) + offset) !=
                              nullptr;
  }

  // A plain contiguous CPU tensor (not a subclass) of the stepper's dtype, or nullptr.
  const Tensor* fitting(PyObject* object) const {
    if (Py_TYPE(object) != reinterpret_cast<PyTypeObject*>(THPVariableClass)) return nullptr;
    const Tensor& tensor = THPVariable_Unpack(object);
    if (tensor.layout() != at::kStrided || !tensor.device().is_cpu() ||
        tensor.scalar_type() != dtype || !tensor.is_contiguous() || tensor.is_conj() ||
        tensor.is_neg()) {
      return nullptr;
    }
    return &tensor;
  }

  // See rnnkit.kernels.stepping.fused_step. Returns False when the cell has changed (the caller
  // builds a new stepper), None when the step declines (autograd on, or arguments other than
  // the plain case), else (output, new state list).
  py::object step(py::handle cell_, py::handle inputs, py::handle state, int64_t form) {
    if (torch::autograd::GradMode::is_enabled()) return py::none();
    if (!valid(cell_.ptr())) return py::bool_(false);
    const Tensor* x = fitting(inputs.ptr());
    int64_t rank = form == STEP ? 2 : 3;
    if (x == nullptr || x->dim() != rank || x->size(rank - 1) != features || x->size(0) < 1 ||
        (rank == 3 && x->size(1) != 1)) {
      return py::none();
    }
    int64_t batch = x->size(0);
    const void* h = nullptr;
    const void* c = nullptr;
    if (!state.is_none()) {
      PyObject* sequence = state.ptr();
      if (!(PyList_Check(sequence) || PyTuple_Check(sequence)) ||
          PySequence_Fast_GET_SIZE(sequence) != n_state) {
        return py::none();
      }
      for (int64_t k = 0; k < n_state; ++k) {
        const Tensor* tensor = fitting(PySequence_Fast_GET_ITEM(sequence, k));
        if (tensor == nullptr || tensor->dim() != 2 || tensor->size(0) != batch ||
            tensor->size(1) != hidden) {
          return py::none();
        }
        (k == 0 ? h : c) = tensor->data_ptr();
      }
    }
    int64_t n_out = form == STEP ? n_state : n_state + 1;
    // A copy: its references keep the slot's objects alive, and not `reusable` by another
    // thread's step, while the kernel writes into it with the GIL released.
    Slot slot = take_slot(batch, form, n_out);
    int64_t bytes = batch * hidden * static_cast<int64_t>(c10::elementSize(dtype));
    int64_t arguments[11] = {reinterpret_cast<int64_t>(packed.data_ptr()), packed.size(0),
                             packed.size(1), features, mode, batch,
                             reinterpret_cast<int64_t>(x->data_ptr()),
                             reinterpret_cast<int64_t>(h), reinterpret_cast<int64_t>(c),
                             reinterpret_cast<int64_t>(slot.address),
                             form == STEP ? 0 : reinterpret_cast<int64_t>(slot.address) +
                                                    n_state * bytes};
    {
      py::gil_scoped_release release;
      entry(arguments);
    }
    py::list new_state(n_state);
    for (int64_t k = 0; k < n_state; ++k) new_state[k] = slot.tensors[k];
    py::object output = slot.tensors[form == STEP ? 0 : n_state];
    return py::make_tuple(std::move(output), std::move(new_state));
  }
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's native call (see rnnkit/kernels/native.py)";
  py::class_<Recipe, RecipePtr>(m, "Recipe")
      .def(py::init([]() { return c10::make_intrusive<Recipe>(); }))
      .def("set_forward", [](Recipe& r, int64_t entry, int64_t companion,
                             std::vector<int64_t> block, std::vector<int64_t> slots,
                             std::vector<int64_t> sources, std::vector<int64_t> indices,
                             std::vector<int64_t> offsets,
                             std::vector<std::vector<int64_t>> allocations) {
        r.forward.set(entry, companion, true, std::move(block), std::move(slots),
                      std::move(sources), std::move(indices), std::move(offsets),
                      std::move(allocations));
      })
      .def("set_backward", [](Recipe& r, bool with_x, int64_t entry, int64_t companion,
                              std::vector<int64_t> block, std::vector<int64_t> slots,
                              std::vector<int64_t> sources, std::vector<int64_t> indices,
                              std::vector<int64_t> offsets,
                              std::vector<std::vector<int64_t>> allocations) {
        r.backward[with_x ? 1 : 0].set(entry, companion, false, std::move(block),
                                       std::move(slots), std::move(sources), std::move(indices),
                                       std::move(offsets), std::move(allocations));
      })
      .def_readwrite("returned", &Recipe::returned)
      .def_readwrite("saved", &Recipe::saved)
      .def_readwrite("gradient_of", &Recipe::gradient_of)
      .def_readwrite("gradient_offset", &Recipe::gradient_offset)
      .def_readwrite("constants", &Recipe::constants)
      .def_readwrite("threads", &Recipe::threads)
      .def("set_halves", [](Recipe& r, RecipePtr first, RecipePtr second,
                            std::vector<int64_t> input_dims, std::vector<int64_t> returned_dims,
                            std::vector<std::vector<int64_t>> returned_shapes) {
        TORCH_CHECK(first->halves.empty() && second->halves.empty(),
                    "set_halves: a half cannot itself be split");
        TORCH_CHECK(returned_dims.size() == returned_shapes.size() &&
                        returned_dims.size() == first->returned.size(),
                    "set_halves: returned_dims and returned_shapes must have one entry per "
                    "returned tensor (", first->returned.size(), ")");
        TORCH_CHECK(input_dims.size() == first->gradient_of.size() && input_dims[0] == 0,
                    "set_halves: input_dims must have one entry per input, x's being 0");
        r.rows[0] = first->forward.allocations[first->returned[0]][0];
        r.rows[1] = second->forward.allocations[second->returned[0]][0];
        r.halves = {std::move(first), std::move(second)};
        r.input_dims = std::move(input_dims);
        r.returned_dims = std::move(returned_dims);
        r.returned_shapes = std::move(returned_shapes);
        r.gradient_of = r.halves[0]->gradient_of;
        r.gradient_offset = r.halves[0]->gradient_offset;
      }, "Makes this recipe run its call in two halves of the batch, one recipe each")
      .def("expect", [](Recipe& r, const Tensor& like, std::vector<std::vector<int64_t>> sizes) {
        r.expected_dtype = like.scalar_type();
        r.expected_sizes = std::move(sizes);
      }, "Sets the dtype (`like`'s) and sizes of the first inputs the recipe runs on");
  // No Python object is touched between the arguments' conversion and the results': the GIL is
  // released, as torch's own ops release it, so other Python threads run meanwhile.
  m.def("run", &run, "Run a recipe on (x, *weights, *states); returns its returned tensors",
        py::call_guard<py::gil_scoped_release>());
  py::class_<Stepper, std::shared_ptr<Stepper>>(m, "Stepper")
      .def(py::init<int64_t, Tensor, int64_t, int64_t, int64_t, int64_t, py::handle, py::object,
                    std::vector<py::object>, py::object, py::object>())
      .def("step", &Stepper::step, "One step, or None to decline, or False when the cell changed",
           py::arg("cell"), py::arg("inputs"), py::arg("state"), py::arg("form"));
  m.def("companion_calls", []() {
    return std::make_pair(companion_calls.load(), concurrent_calls.load());
  }, "(calls run with a companion entry, those of them whose two tasks ran on two threads)");
  m.def("held_up_calls", []() {
    return std::make_pair(late_calls.load(), alone_calls.load());
  }, "(two-task calls whose second core was held up, calls run on one thread since then)");
  m.def("set_late_after", [](int64_t ns) {
    TORCH_CHECK(ns >= 0, "set_late_after: ns must be >= 0, got ", ns);
    alone_until.store(0);
    alone_for.store(kAloneMinNs);
    return late_after_ns.exchange(ns);
  }, "Sets how late (ns, beside a share of the first task's time) a call's second task may start "
     "or end before the next calls run on one thread for a while (0: every call is late), and "
     "forgets the last late call; returns the previous setting");
  m.def("halved_calls", []() {
    return std::make_pair(halved_calls.load(), concurrent_halves.load());
  }, "(calls split in halves of the batch, those of them whose halves ran on two threads)");
  m.def("pooled_bytes", []() { return BufferPool::instance().free_bytes(); },
        "Bytes of freed buffers the native call's pool keeps for reuse");
  m.def("set_pool_limit", [](int64_t bytes) {
    TORCH_CHECK(bytes >= 0, "set_pool_limit: bytes must be >= 0, got ", bytes);
    return static_cast<int64_t>(BufferPool::instance().set_limit(static_cast<size_t>(bytes)));
  }, "Sets the most bytes of freed buffers the pool keeps (the oldest go first); returns the "
     "previous limit");
  m.def("set_blas_threads_functions", [](int64_t get, int64_t set) {
    get_blas_threads = reinterpret_cast<GetThreads>(get);
    set_blas_threads = reinterpret_cast<SetThreads>(set);
  });
}
