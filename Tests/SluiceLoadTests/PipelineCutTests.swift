import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceLoad

/// A file's rows through the steps on two threads (chunks of rows, taken in order) give the
/// same batches, counts and rejects file as on one thread.
@Suite struct PipelineCutTests {
    @Test func twoThreadsGiveWhatOneThreadGives() async throws {
        let dir = NSTemporaryDirectory() + "sluice-cut-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var text = "id,amount\n"
        for i in 0..<5_000 { text += i % 97 == 0 ? "\(i),oops\n" : "\(i),\(i % 10)\n" }  // 52 rejects; amount 0 is dropped
        let file = dir + "/in.csv"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let steps: [PipelineStep] = [
            .cast([Pair("amount", .int)]),
            .filter(try ExprParser.parse("amount > 0")),
            .derive([Pair("twice", try ExprParser.parse("amount * 2"))]),
        ]
        var runs: [(PipelineRunner.FileResult, [[String]], String)] = []
        for threads in [1, 2] {
            var t = RowTransformer(steps: steps)
            let log = StepRejectLog(path: dir + "/rejects-\(threads).csv")
            var batches: [[String]] = []
            let result = try await PipelineRunner.cut(file: file, displayName: "in.csv", steps: &t, batchRows: 700, log: log, records: nil,
                                                      threads: threads) { items in
                batches.append(items.map { "\($0.place)|\($0.row.slots.map { $0.text ?? "null" }.joined(separator: ","))" })
            }
            try log.close()
            runs.append((result, batches, try String(contentsOfFile: log.path, encoding: .utf8)))
        }
        #expect(runs[0].0 == runs[1].0)
        #expect(runs[0].0.read == 5_000 && runs[0].0.rejected == 52 && runs[0].0.dropped > 0)
        #expect(runs[0].1 == runs[1].1 && runs[0].1.count > 5)
        #expect(runs[0].2 == runs[1].2 && runs[0].2.contains("in.csv line 99"))
    }

    /// Text records (three lines each, CRLF, a record that does not parse, one with bytes
    /// that are not UTF-8) go to the step threads as bytes: two step threads give the batches,
    /// counts, places and rejects of one, and those are the records' own (lines, rejects, the
    /// repaired text). That bytes give what rows of text give is `textRecordsAsBytesGiveTheRowsOfTheirText`.
    @Test func textRecordsOnTwoThreadsGiveWhatOneThreadGives() async throws {
        let dir = NSTemporaryDirectory() + "sluice-cut-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var data: [UInt8] = []
        for i in 0..<4_000 {
            let record = i % 301 == 0 ? "Lat: x\r\nLon: \(i)\r\nKm: 1\r\n" : "Lat: \(i).5\r\nLon: -\(i)\r\nKm: \(i % 7),5\r\n"
            data += Array(record.utf8)
            if i == 2_500 { data += [0x4C, 0x61, 0x74, 0x3A, 0x20, 0x31, 0xFF, 0x0A] }  // "Lat: 1\xFF"
        }
        let file = dir + "/points.txt"
        try Data(data).write(to: URL(fileURLWithPath: file))
        let steps: [PipelineStep] = [
            .parse(field: "line", patterns: [try LinearRegex("^Lat: (?<lat>[\\d.]+)\\nLon: (?<lon>-?\\d+)\\nKm: (?<km>[\\d,]+)$"), try LinearRegex("^Lat: (?<lat>\\d\\W)$")]),
            .derive([Pair("km", try ExprParser.parse("to_number(km, ',')"))]),
            .filter(try ExprParser.parse("km IS NULL OR km > 1")),
            .select(["lat", "lon", "km"]),
        ]
        var runs: [(PipelineRunner.FileResult, [[String]], String)] = []
        for threads in [1, 2] {
            var t = RowTransformer(steps: steps)
            let log = StepRejectLog(path: dir + "/rejects-\(threads).csv")
            var batches: [[String]] = []
            let result = try await PipelineRunner.cut(file: file, displayName: "points.txt", steps: &t, batchRows: 300, log: log,
                                                      records: .startsWith("Lat:"), threads: threads) { items in
                batches.append(items.map { "\($0.place)|\($0.row.fields)|\($0.row.slots.map { $0.text ?? "null" }.joined(separator: ","))" })
            }
            try log.close()
            runs.append((result, batches, try String(contentsOfFile: log.path, encoding: .utf8)))
        }
        #expect(runs[0].0 == runs[1].0)
        #expect(runs[0].0.read == 4_001 && runs[0].0.rejected == 14 && runs[0].0.dropped == (0..<4_000).filter { $0 % 301 != 0 && $0 % 7 == 0 }.count, "\(runs[0].0)")
        #expect(runs[0].1 == runs[1].1 && runs[0].1.joined().contains("points.txt line 7504|[\"lat\", \"lon\", \"km\"]|1\u{FFFD},null,null"))
        #expect(runs[0].2 == runs[1].2 && runs[0].2.contains("points.txt line 904"), "\(runs[0].2)")
    }

    /// A load that stops taking rows stops the reader and the step threads (the cut throws its
    /// error, nothing hangs), and a read error part-way is thrown after the rows before it,
    /// on two threads as on one.
    @Test func stoppingOrFailingPartWayEndsTheCut() async throws {
        let dir = NSTemporaryDirectory() + "sluice-cut-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/in.ndjson"
        var text = ""
        for i in 0..<20_000 { text += i == 9_000 ? "{\"id\": \n" : "{\"id\": \(i)}\n" }
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        var outcomes: [String] = []
        for threads in [1, 2] {
            var t = RowTransformer(steps: [.derive([Pair("next", try ExprParser.parse("id + 1"))])])
            var taken = 0
            do {
                _ = try await PipelineRunner.cut(file: file, displayName: "in.ndjson", steps: &t, batchRows: 500, log: nil, records: nil,
                                                 threads: threads) { items throws(SluiceError) in
                    taken += items.count
                    if taken >= 2_000 { throw SluiceError(.aborted, "the load stopped") }
                }
                Issue.record("the cut went on after its load stopped")
            } catch {
                #expect(error.message == "the load stopped" && taken == 2_000)
            }
            taken = 0
            do {
                _ = try await PipelineRunner.cut(file: file, displayName: "in.ndjson", steps: &t, batchRows: 500, log: nil, records: nil,
                                                 threads: threads) { items in taken += items.count }
                Issue.record("a malformed record was read")
            } catch {
                outcomes.append("\(error.code) \(error.location?.line ?? 0) after \(taken)")
            }
        }
        #expect(outcomes.count == 2 && outcomes[0] == outcomes[1])
        #expect(outcomes.first?.hasSuffix("after 9000") == true, "\(outcomes)")
    }

    /// A JSON record that writes a key twice: its last value, in its first place (as every
    /// JSON read in Sluice takes it).
    @Test func aRepeatedJSONKeyKeepsItsLastValue() async throws {
        let dir = NSTemporaryDirectory() + "sluice-cut-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/in.ndjson"
        try "{\"v\": \"a\", \"id\": 1, \"v\": \"b\"}\n{\"id\": 2, \"v\": \"c\"}\n".write(toFile: file, atomically: true, encoding: .utf8)
        var t = RowTransformer(steps: [])
        var rows: [PipelineRow] = []
        _ = try await PipelineRunner.cut(file: file, displayName: "in.ndjson", steps: &t, batchRows: 10, log: nil, records: nil, threads: 1) { items in
            rows += items.map(\.row)
        }
        #expect(rows == [PipelineRow(fields: ["v", "id"], slots: [.text("b"), .int(1)]), PipelineRow(fields: ["id", "v"], slots: [.int(2), .text("c")])])
    }
}
