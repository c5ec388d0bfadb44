import Testing
import Foundation
@testable import SluiceFormats
import SluiceCore

/// Issue 17: the pure parts of the Delta reader (Z85, Roaring deletion vectors, paths, the
/// log listing) against the protocol's own examples and bitmaps pyroaring serialized, and a
/// bounded mutation pass over the committed corpus.
@Suite struct DeltaFormatTests {
    func seed(_ name: String) -> [UInt8] {
        Array(corpus("delta").first { $0.name == name }!.bytes.dropFirst())
    }

    @Test func z85MatchesZeroMQsTestVectorAndTheProtocolsExamples() throws {
        #expect(Z85.decode("HelloWorld") == [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
        #expect(Z85.decode("Hell") == nil && Z85.decode("Hell~") == nil)
        #expect(Z85.decode("wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L")?.count == 40)
        // The protocol's example of a DV file named by a random prefix and a UUID.
        let d = DeletionVectorDescriptor(storageType: "u", pathOrInlineDv: "ab^-aqEH.-t@S}K{vb[*k^", offset: 4, sizeInBytes: 40, cardinality: 6)
        #expect(try DeletionVector.relativePath(d) == "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin")
        #expect(d.uniqueId == "uab^-aqEH.-t@S}K{vb[*k^@4")
    }

    @Test func roaringBitmapsAsPyroaringSerializesThem() throws {
        #expect(try DeletionVector(serialized: seed("dv-array.bin")).rows == [0, 3, 4, 7, 200, 299])
        #expect(try DeletionVector(serialized: seed("dv-bitmap.bin")).rows == Array(stride(from: 0, to: 9000, by: 2)))
        #expect(try DeletionVector(serialized: seed("dv-runs.bin")).rows == Array(50..<250))
        #expect(try DeletionVector(serialized: seed("dv-buckets.bin")).rows == [1, (1 << 32) + 5, 1 << 33])
        // More rows than the log's cardinality: stopped, not allocated.
        #expect(throws: SluiceError.self) { try DeletionVector(serialized: seed("dv-bitmap.bin"), maxRows: 100) }
        var bad = seed("dv-array.bin")
        bad[0] ^= 1
        #expect(throws: SluiceError.self) { try DeletionVector(serialized: bad) }
    }

    @Test func aDeletionVectorFileFrameIsCheckedByItsCRC() throws {
        let frame = seed("dvfile-frame.bin")
        let dv = try DeletionVector(file: frame, expectedSize: frame.count - 8, maxRows: 1 << 20, fileName: "t/x.bin")
        // The seed: a file's rows 0, 3, 4, 7, 200, 299 and every third from 10 to 289.
        #expect(dv.rows == ([0, 3, 4, 7, 200, 299] + Array(stride(from: 10, to: 290, by: 3))).sorted())
        var damaged = frame
        damaged[100] ^= 0x10
        do {
            _ = try DeletionVector(file: damaged, expectedSize: frame.count - 8, maxRows: 1 << 20, fileName: "t/x.bin")
            Issue.record("a damaged frame read")
        } catch {
            #expect(error.description.contains("t/x.bin") && error.description.contains("checksum does not match"))
        }
        #expect(throws: SluiceError.self) { try DeletionVector(file: frame, expectedSize: 12, maxRows: 1 << 20, fileName: "t/x.bin") }
    }

    @Test func logPathsAreDecodedAndKeptInsideTheTable() throws {
        #expect(try DeltaLog.relativePath("cat=A%20B/part-0.parquet") == "cat=A B/part-0.parquet")
        for escaping in ["../x.parquet", "a/../../x.parquet", "/etc/passwd", "s3://other/x.parquet", "file:/x.parquet", "%2E%2E/x"] {
            #expect(throws: SluiceError.self, "\(escaping)") { try DeltaLog.relativePath(escaping) }
        }
        #expect(throws: SluiceError.self) { try DeltaLog.relativePath("bad%zz") }
    }

    @Test func theListingPicksCompleteCheckpointsOnly() {
        let names = ["00000000000000000000.json", "00000000000000000001.json", "00000000000000000002.json",
                     "00000000000000000002.checkpoint.0000000001.0000000002.parquet",  // part 2 of 2 missing
                     "00000000000000000001.checkpoint.0000000001.0000000002.parquet", "00000000000000000001.checkpoint.0000000002.0000000002.parquet",
                     "00000000000000000003.crc", "_last_checkpoint", "00000000000000000002.00000000000000000003.compacted.json", "x.json"]
        let l = DeltaLog.Listing(names: names)
        #expect(l.commits == [0, 1, 2])
        #expect(l.checkpoints.keys.sorted() == [1])
        #expect(l.checkpoints[1]?.count == 2)
        #expect(l.latest == 2)
    }

    @Test func replayKeepsTheNewestLogicalFileAndRemovesFirstWithinACommit() throws {
        func add(_ p: String, dv: String? = nil) -> DeltaFileAction {
            DeltaFileAction(path: p, partitionValues: [:], size: 1, modificationTime: 0, dataChange: true, stats: nil,
                            deletionVector: dv.map { DeletionVectorDescriptor(storageType: "i", pathOrInlineDv: $0, offset: nil, sizeInBytes: 4, cardinality: 1) })
        }
        var b = DeltaSnapshotBuilder()
        b.applyCommit(version: 0, [.add(add("a")), .add(add("b"))])
        // A DV replaced: the add of the new one listed before the remove of the old one.
        b.applyCommit(version: 1, [.add(add("a", dv: "x")), .remove(add("a"))])
        b.applyCommit(version: 2, [.remove(add("b")), .add(add("c"))])
        b.applyCommit(version: 3, [.add(add("b"))])  // the same file added back
        #expect(Set(b.liveFiles.map(\.key)) == [add("a", dv: "x").key, add("b").key, add("c").key] && b.liveFiles.count == 3)
    }

    /// A short bounded pass of the seeded mutation fuzzer over the delta corpus (commits and
    /// deletion vectors); `scripts/fuzz.sh 1800 delta` runs libFuzzer for longer.
    @Test func mutatedLogsAndDeletionVectorsNeverCrashOrHang() {
        let seconds = ProcessInfo.processInfo.environment["SLUICE_FUZZ_SECONDS"].flatMap(Double.init) ?? 4
        var stats = Mutator.Stats()
        var failed = 0
        Mutator.run(corpus: corpus("delta").map(\.bytes), seed: 20261206, seconds: seconds, stats: &stats) { input in
            if FuzzTargets.delta(input) != nil { failed += 1 }
        }
        #expect(stats.runs > 500)
        #expect(failed > 0, "mutations reach the error paths")
        #expect(stats.slowest < 2, "an input took \(stats.slowest) s")
    }
}
