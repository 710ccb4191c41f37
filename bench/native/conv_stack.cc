// The benchmark network of bench/train-step.ts written directly against
// libtorch in C++: the same layers, the same ops in the same order, the same
// parameter shapes and the same Adam update, with no binding in between. It is
// the "B" of the A/B comparison that measures the binding's overhead.
//
// Driven over stdin/stdout by bench/train-step.ts (one process for the whole
// run, so its warm-up and caches persist between the interleaved blocks):
//   run K      → K training steps; replies "ms <wall ms> <process CPU ms>"
//   tiny N     → N adds of two 1-element tensors; replies "us <per call>"
//   loss       → replies "loss <last loss>"
//   quit       → exits
// Options: --threads N --batch B --channels C --layers L --res R --groups G --seed S
#include <torch/torch.h>

#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Options {
  int threads = 1, batch = 16, in_channels = 5, out_channels = 3, channels = 64, layers = 9, res = 32, groups = 16;
  uint64_t seed = 0;
};

struct ConvStack {
  std::vector<torch::Tensor> conv_w, conv_b, gn_w, gn_b;
  torch::Tensor out_w, out_b;
  int groups;

  ConvStack(const Options& o, torch::Generator& gen) : groups(o.groups) {
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    for (int l = 0; l < o.layers; ++l) {
      int cin = l == 0 ? o.in_channels : o.channels;
      double scale = std::sqrt(1.0 / (cin * 9));
      conv_w.push_back((at::randn({o.channels, cin, 3, 3}, gen, f32) * scale).requires_grad_(true));
      conv_b.push_back(torch::zeros({o.channels}, f32).requires_grad_(true));
      gn_w.push_back(torch::ones({o.channels}, f32).requires_grad_(true));
      gn_b.push_back(torch::zeros({o.channels}, f32).requires_grad_(true));
    }
    out_w = (at::randn({o.out_channels, o.channels, 3, 3}, gen, f32) * std::sqrt(1.0 / (o.channels * 9))).requires_grad_(true);
    out_b = torch::zeros({o.out_channels}, f32).requires_grad_(true);
  }

  // Same registration order as the TypeScript module: per layer conv weight,
  // conv bias, norm weight, norm bias; then the output conv.
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> ps;
    for (size_t l = 0; l < conv_w.size(); ++l) {
      ps.push_back(conv_w[l]);
      ps.push_back(conv_b[l]);
      ps.push_back(gn_w[l]);
      ps.push_back(gn_b[l]);
    }
    ps.push_back(out_w);
    ps.push_back(out_b);
    return ps;
  }

  torch::Tensor forward(torch::Tensor x) const {
    for (size_t l = 0; l < conv_w.size(); ++l) {
      x = at::conv2d(x, conv_w[l], conv_b[l], {1, 1}, {1, 1}, {1, 1}, 1);
      x = at::group_norm(x, groups, gn_w[l], gn_b[l], 1e-5, true);
      x = at::silu(x);
    }
    return at::conv2d(x, out_w, out_b, {1, 1}, {1, 1}, {1, 1}, 1);
  }
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    long v = std::strtol(argv[i + 1], nullptr, 10);
    if (k == "--threads") o.threads = static_cast<int>(v);
    else if (k == "--batch") o.batch = static_cast<int>(v);
    else if (k == "--channels") o.channels = static_cast<int>(v);
    else if (k == "--layers") o.layers = static_cast<int>(v);
    else if (k == "--res") o.res = static_cast<int>(v);
    else if (k == "--groups") o.groups = static_cast<int>(v);
    else if (k == "--seed") o.seed = static_cast<uint64_t>(v);
    else {
      std::fprintf(stderr, "conv_stack: unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return o;
}

double nowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// User + system CPU time of the whole process (all threads), as Node's process.cpuUsage().
double cpuMs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  // The same malloc tuning as the addon's module init (native/addon.cc), so the
  // comparison isolates the binding rather than the allocator policy.
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_") && !std::getenv("MALLOC_MMAP_THRESHOLD_") && !std::getenv("GLIBC_TUNABLES")) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  at::set_num_threads(o.threads);
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  ConvStack net(o, gen);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor x = at::randn({o.batch, o.in_channels, o.res, o.res}, gen, f32);
  torch::Tensor target = at::randn({o.batch, o.out_channels, o.res, o.res}, gen, f32);
  std::vector<torch::Tensor> params = net.parameters();
  // torch::optim::Adam's step is the same sequence of ops as the addon's fused
  // adamStep (mul_/add_, mul_/addcmul_, sqrt/div/add_, addcdiv_).
  torch::optim::Adam adam(params, torch::optim::AdamOptions(1e-4).betas({0.9, 0.999}).eps(1e-8));
  double last_loss = 0;

  auto step = [&]() {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();  // set to none, as the TS zeroGrad
    torch::Tensor y = net.forward(x);
    torch::Tensor loss = (y - target).square().mean();
    loss.backward();
    adam.step();
    last_loss = loss.item<double>();
  };

  std::cout << "ready threads " << at::get_num_threads() << std::endl;
  std::string cmd;
  long n;
  while (std::cin >> cmd) {
    if (cmd == "quit") break;
    if (cmd == "run") {
      std::cin >> n;
      double t0 = nowMs(), c0 = cpuMs();
      for (long k = 0; k < n; ++k) step();
      double wall = nowMs() - t0, cpu = cpuMs() - c0;
      std::cout << "ms " << wall << " " << cpu << std::endl;
    } else if (cmd == "tiny") {
      std::cin >> n;
      torch::Tensor a = torch::ones({1}, f32), b = torch::ones({1}, f32);
      double t0 = nowMs();
      for (long k = 0; k < n; ++k) {
        torch::Tensor c = at::add(a, b);
      }
      std::cout << "us " << (nowMs() - t0) * 1000.0 / static_cast<double>(n) << std::endl;
    } else if (cmd == "loss") {
      std::cout << "loss " << last_loss << std::endl;
    } else {
      std::cout << "error unknown command " << cmd << std::endl;
    }
  }
  return 0;
}
