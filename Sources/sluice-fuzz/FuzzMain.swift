import SluiceFormats
import Foundation

// Two ways to fuzz the Parquet and Avro readers and the pipeline steps:
// - built with `-sanitize=fuzzer -DFUZZING` (scripts/fuzz.sh), libFuzzer drives
//   LLVMFuzzerTestOneInput; SLUICE_FUZZ_TARGET picks the target (parquet, avro, steps or delta);
// - built normally, `sluice-fuzz parquet|avro|steps|delta CORPUS_DIR [seconds] [seed]` runs a seeded
//   random-mutation loop over the corpus (the same harness the test suite runs briefly).

#if FUZZING
/// libFuzzer's entry for programs that keep their own `main` (SwiftPM renames it).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        let rc = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
            FuzzTargets.run(ProcessInfo.processInfo.environment["SLUICE_FUZZ_TARGET"] ?? "parquet", bytes)
            return 0
        }
        exit(rc)
    }
}
#else
@main
struct FuzzMain {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 3, FuzzTargets.names.contains(args[1]) else {
            FileHandle.standardError.write(Data("usage: sluice-fuzz \(FuzzTargets.names.joined(separator: "|")) CORPUS_DIR [seconds] [seed]\n".utf8))
            exit(2)
        }
        let seconds = args.count > 3 ? Double(args[3]) ?? 10 : 10
        let seed = args.count > 4 ? UInt64(args[4]) ?? 1 : UInt64(Date().timeIntervalSince1970)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: args[2])) ?? []).sorted().compactMap {
            FileManager.default.contents(atPath: args[2] + "/" + $0).map { Array($0) }
        }
        guard !files.isEmpty else { FileHandle.standardError.write(Data("empty corpus\n".utf8)); exit(2) }
        let target = args[1]
        let last = NSTemporaryDirectory() + "sluice-fuzz-last-input"
        var stats = Mutator.Stats()
        Mutator.run(corpus: files, seed: seed, seconds: seconds, stats: &stats) { input in
            // Saved first, so a crash leaves the input that caused it behind.
            _ = FileManager.default.createFile(atPath: last, contents: Data(input))
            FuzzTargets.run(target, input)
        }
        print("\(args[1]): \(stats.runs) inputs in \(String(format: "%.1f", seconds)) s from seed \(seed); slowest \(String(format: "%.3f", stats.slowest)) s")
    }
}
#endif
