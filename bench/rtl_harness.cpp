// Plain C++ Verilator harness for the generated BnnSystem: the same stimulus and the same
// protocol as the cocotb testbench (sim/tb/tb_core.py), without Python, to measure what the
// cocotb layer costs. Reads a binary stimulus file written by bench/bench_rtl.py:
//   uint32 header[4] = {images, words_per_image, in_words32, out_words32}
//   images * words_per_image * in_words32   input-buffer words (LSW first)
//   images * out_words32                    expected result payloads (golden model)
// and prints one JSON line: images, mismatches, cycles, seconds. (Verilator spells the
// double underscore of Amaranth's port names `i__valid` as `i___05Fvalid`.)
//
// Built with -DMBNN_PROGRAM for a system that programs its own arrays: the stimulus header
// then has two more words, {pulses, failed cells} of golden write-verify, and the harness
// first runs the programming phase (prog_start, every failure report taken at once, until
// prog_done) and checks the counters and the crossbar's replay; the JSON line gains
// program_cycles, program_seconds and program_mismatches.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "Vbnn_system.h"
#include "verilated.h"

template <typename T>
static void set_words(T& sig, const uint32_t* w, int n) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = w[0];
        if (n > 1) v |= static_cast<uint64_t>(w[1]) << 32;
        sig = static_cast<T>(v);
    } else {
        for (int i = 0; i < n; ++i) sig[i] = w[i];
    }
}

template <typename T>
static bool equal_words(const T& sig, const uint32_t* w, int n) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = w[0];
        if (n > 1) v |= static_cast<uint64_t>(w[1]) << 32;
        return static_cast<uint64_t>(sig) == v;
    } else {
        for (int i = 0; i < n; ++i)
            if (sig[i] != w[i]) return false;
        return true;
    }
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s STIMULUS\n", argv[0]);
        return 2;
    }
    FILE* f = std::fopen(argv[1], "rb");
    if (!f) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
#ifdef MBNN_PROGRAM
    const size_t header_words = 6;
#else
    const size_t header_words = 4;
#endif
    uint32_t hdr[6] = {0, 0, 0, 0, 0, 0};
    if (std::fread(hdr, 4, header_words, f) != header_words) return 2;
    const uint32_t images = hdr[0], per_image = hdr[1], in_w = hdr[2], out_w = hdr[3];
    std::vector<uint32_t> in(static_cast<size_t>(images) * per_image * in_w);
    std::vector<uint32_t> expect(static_cast<size_t>(images) * out_w);
    if (std::fread(in.data(), 4, in.size(), f) != in.size()) return 2;
    if (std::fread(expect.data(), 4, expect.size(), f) != expect.size()) return 2;
    std::fclose(f);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vbnn_system>(ctx.get());
    uint64_t cycles = 0;
    auto tick = [&]() {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        ++cycles;
    };
    top->clk = 0;
    top->rst = 1;
    top->i___05Fvalid = 0;
    top->o___05Fready = 0;
    top->eval();
    tick();
    tick();
    top->rst = 0;

#ifdef MBNN_PROGRAM
    auto p0 = std::chrono::steady_clock::now();
    uint32_t reports = 0;
    top->prog_report___05Fready = 1;
    top->prog_start = 1;
    tick();                      // the edge that takes the start: cycles count from here
    top->prog_start = 0;
    const uint64_t c0 = cycles;
    while (!top->prog_done && cycles - c0 < 2000000000ull) {
        if (top->prog_report___05Fvalid) ++reports;   // taken at the next edge (ready high)
        tick();
    }
    const double program_secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count();
    const uint64_t program_cycles = cycles - c0;
    cycles = 0;                  // the inference's own cycles from here
    const uint32_t program_mismatches =
        (top->prog_pulses != hdr[4]) + (top->prog_failures != hdr[5]) + (reports != hdr[5]) +
        (top->replay_errors != 0) + (top->pulses_replayed != hdr[4]) + !top->prog_done;
#endif

    auto t0 = std::chrono::steady_clock::now();
    uint32_t fed_image = 0, fed_word = 0, done = 0, mismatches = 0;
    while (done < images) {
        // Inputs are set between edges, as the cocotb testbench sets them at falling edges.
        top->i___05Fvalid = 0;
        if (fed_image < images && top->i___05Fready) {
            set_words(top->i___05Fpayload, &in[(static_cast<size_t>(fed_image) * per_image + fed_word) * in_w], in_w);
            top->i___05Fvalid = 1;
            if (++fed_word == per_image) {
                fed_word = 0;
                ++fed_image;
            }
        }
        top->o___05Fready = top->o___05Fvalid;   // take each result the cycle it appears
        if (top->o___05Fvalid) {
            if (!equal_words(top->o___05Fpayload, &expect[static_cast<size_t>(done) * out_w], out_w))
                ++mismatches;
            ++done;
        }
        tick();
        if (cycles > 100000000ull) break;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->final();
#ifdef MBNN_PROGRAM
    std::printf("{\"program_cycles\": %llu, \"program_seconds\": %.6f, "
                "\"program_mismatches\": %u, ",
                static_cast<unsigned long long>(program_cycles), program_secs,
                program_mismatches);
    mismatches += program_mismatches;
#else
    std::printf("{");
#endif
    std::printf("\"images\": %u, \"mismatches\": %u, \"cycles\": %llu, \"seconds\": %.6f}\n",
                done, mismatches, static_cast<unsigned long long>(cycles), secs);
    return mismatches ? 1 : 0;
}
