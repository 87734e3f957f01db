// A measurement prototype, not part of the library: SimpleRNN's forward and backward through
// a C++ autograd function that calls the compiled numba loops through cfunc pointers, with no
// Python between the module call and the kernels. See bench/cpp_call_prototype.py.
#include <torch/extension.h>

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

typedef void (*Kernel)(int64_t*);  // takes one block of int64: sizes, then addresses
static Kernel forward_kernel = nullptr, backward_kernel = nullptr;

static inline int64_t address(const Tensor& t) { return reinterpret_cast<int64_t>(t.data_ptr()); }

struct SimpleRNN : public Function<SimpleRNN> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor w_ih, Tensor w_hh,
                               Tensor b_ih, Tensor b_hh) {
    int64_t B = x.size(0), T = x.size(1), I = x.size(2), H = w_hh.size(0);
    auto o = x.options();
    auto out = torch::empty({B, T, H}, o), h_final = torch::empty({B, H}, o);
    auto h0 = torch::zeros({B, H}, o);
    auto x_t = torch::empty({T, B, I}, o), fresh = torch::empty({T, B, H}, o);
    auto h_all = torch::empty({T + 1, B, H}, o);
    int64_t a[] = {B, T, I, H, address(x), address(h0), address(w_ih), address(w_hh),
                   address(b_ih), address(b_hh), address(out), address(h_final), address(x_t),
                   address(fresh), address(h_all)};
    forward_kernel(a);
    ctx->save_for_backward({x_t, fresh, h_all, w_ih, w_hh});
    return {out, h_final};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x_t = saved[0], fresh = saved[1], h_all = saved[2], w_ih = saved[3], w_hh = saved[4];
    int64_t T = x_t.size(0), B = x_t.size(1), I = x_t.size(2), H = w_hh.size(0);
    auto o = w_ih.options();
    Tensor d_out = grads[0].defined() ? grads[0].contiguous() : torch::zeros({B, T, H}, o);
    Tensor d_h = grads[1].defined() ? grads[1].clone(at::MemoryFormat::Contiguous)
                                    : torch::zeros({B, H}, o);
    auto d_w_ih = torch::empty({H, I}, o), d_w_hh = torch::empty({H, H}, o);
    auto d_b_ih = torch::empty({H}, o), d_b_hh = torch::empty({H}, o);
    int64_t a[] = {B, T, I, H, address(d_out), address(d_h), address(x_t), address(fresh),
                   address(h_all), address(w_ih), address(w_hh), address(d_w_ih),
                   address(d_w_hh), address(d_b_ih), address(d_b_hh)};
    backward_kernel(a);
    return {Tensor(), d_w_ih, d_w_hh, d_b_ih, d_b_hh};
  }
};

std::vector<Tensor> simple_rnn(Tensor x, Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.scalar_type() == at::kFloat,
              "x: expected a contiguous float32 (B, T, I) tensor");
  return SimpleRNN::apply(x, w_ih, w_hh, b_ih, b_hh);
}

void set_kernels(int64_t forward, int64_t backward) {
  forward_kernel = reinterpret_cast<Kernel>(forward);
  backward_kernel = reinterpret_cast<Kernel>(backward);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("simple_rnn", &simple_rnn);
  m.def("set_kernels", &set_kernels);
}
