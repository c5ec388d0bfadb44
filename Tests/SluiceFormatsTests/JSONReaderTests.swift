import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceFormats
import SluiceTesting

@Suite struct JSONReaderTests {
    func readAll(_ source: any ByteChunkReader, _ schema: TableSchema, layout: JSONFramer.Layout = .detect,
                 op: String? = nil, maxRecord: Int = 1 << 20) throws -> (rows: [[Value]], lines: [Int64], rejects: [RowReject]) {
        let r = JSONBatchReader(source: source, layout: layout, spec: ReadSpec(schema: schema, opField: op, limits: ReadLimits(maxRecordBytes: maxRecord, batchRows: 2)))
        var rows: [[Value]] = [], lines: [Int64] = [], rejects: [RowReject] = []
        while let b = try r.next() {
            rows += (0..<b.batch.count).map { b.batch.row($0) }
            lines += b.batch.lines
            rejects += b.rejects
        }
        return (rows, lines, rejects)
    }

    let orders = TableSchema(columns: [
        ColumnSchema(name: "id", type: .int64),
        ColumnSchema(name: "city", type: .text, source: "customer.address.city"),
        ColumnSchema(name: "customer", type: .json),
        ColumnSchema(name: "first_sku", type: .text, source: "items.0.sku"),
    ])

    @Test func ndjsonWithNestedValuesPathsAndRejects() throws {
        for chunk in [3, 16, 4096] {
            let r = try readAll(try FileSource(fixture("orders.ndjson"), chunk: chunk), orders, layout: .lines)
            #expect(r.rows == [
                [.int64(1), .text("Recife"), .json(#"{"name":"Ana","address":{"city":"Recife"}}"#), .text("a")],
                [.int64(2), .null, .json(#"{"name":"Bo","address":null}"#), .null],
            ], "chunk \(chunk)")
            #expect(r.lines == [1, 3])
            #expect(r.rejects.map(\.line) == [4, 5])
            #expect(r.rejects[0].reason.hasPrefix("invalid JSON at byte"))
            #expect(r.rejects[1].reason == "expected a JSON object")
            #expect(r.rejects[1].fields == [#"["not", "an", "object"]"#])
        }
    }

    /// Flat records (no dotted column) are read without a tape where they are plain; every
    /// record of a generated mix — escapes, nested values, keys twice, bad numbers, bad
    /// UTF-8, control bytes, missing and unknown keys, odd spacing, ops — gives the same
    /// rows, rejects and unused fields as the tape reader alone.
    @Test func flatRecordsReadAsTheTapeReadsThem() throws {
        let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "name", type: .text),
                                      ColumnSchema(name: "score", type: .float64), ColumnSchema(name: "ok", type: .bool),
                                      ColumnSchema(name: "doc", type: .json), ColumnSchema(name: "price", type: .decimal(precision: 9, scale: 2)),
                                      ColumnSchema(name: "day", type: .date)])
        let values: [String] = ["1", "-0", "12.5e3", "01", "1.", "-", "2e", "\"x\"", "\"a\\\"b\"", "\"caf\u{e9}\"", "\"\\u00e9\"",
                                "true", "false", "tru", "null", "nul", "{}", "[1,2]", "{\"a\":1}", "\"2024-02-29\"", "\"bad\u{1}\"",
                                "\"12.345\"", "99999999999999999999", "\"\"", "3.14159", "\"tab\\there\""]
        let keys = ["id", "name", "score", "ok", "doc", "price", "day", "op", "extra", "na\\u006de"]
        let ops = ["\"I\"", "\"D\"", "\"U\"", "\"X\"", "1", "null"]
        var rng = SplitMix(seed: 3)
        var text: [UInt8] = []
        for _ in 0..<3_000 {
            var members: [String] = []
            for _ in 0..<(Int(rng.next() % 7)) {
                let k = keys[Int(rng.next() % UInt64(keys.count))]
                let v = k == "op" ? ops[Int(rng.next() % UInt64(ops.count))] : values[Int(rng.next() % UInt64(values.count))]
                let sp = [" ", "", "\t", "  "][Int(rng.next() % 4)]
                members.append("\"\(k)\"\(sp):\(sp)\(v)")
            }
            var record = Array(("{" + members.joined(separator: rng.next() % 9 == 0 ? " , " : ",") + "}").utf8)
            switch rng.next() % 40 {
            case 0: record = Array("[1]".utf8)
            case 1: record.removeLast()
            case 2: record += Array(" x".utf8)
            case 3: record.insert(0xFF, at: record.count / 2)
            case 4: record = Array(" ".utf8) + record + Array("  ".utf8)
            default: break
            }
            text += record + [0x0A]
        }
        func read(flat: Bool) throws -> (rows: [[Value]], lines: [Int64], ops: [RowOp], rejects: [RowReject], unused: [String]) {
            let r = JSONBatchReader(source: MemoryChunkReader(text, chunkSize: 4096), layout: .lines,
                                    spec: ReadSpec(schema: s, opField: "op", limits: ReadLimits(batchRows: 100)))
            if !flat { r.state.flat = nil }
            var out: (rows: [[Value]], lines: [Int64], ops: [RowOp], rejects: [RowReject], unused: [String]) = ([], [], [], [], [])
            while let b = try r.next() {
                out.rows += (0..<b.batch.count).map { b.batch.row($0) }
                out.lines += b.batch.lines
                out.ops += b.batch.ops
                out.rejects += b.rejects
            }
            out.unused = r.unusedFields
            return out
        }
        let fast = try read(flat: true), slow = try read(flat: false)
        #expect(fast.rows.count > 300 && fast.rejects.count > 300, "\(fast.rows.count) rows, \(fast.rejects.count) rejects")
        #expect(fast.rows == slow.rows)
        #expect(fast.lines == slow.lines && fast.ops == slow.ops)
        #expect(fast.rejects.map(\.line) == slow.rejects.map(\.line))
        #expect(fast.rejects.map(\.reason) == slow.rejects.map(\.reason))
        #expect(fast.rejects.map(\.fields) == slow.rejects.map(\.fields))
        #expect(fast.unused == slow.unused && fast.unused.contains("extra"))
    }

    @Test func arrayOfObjects() throws {
        let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "tags", type: .json),
                                      ColumnSchema(name: "price", type: .decimal(precision: 10, scale: 2))])
        for chunk in [1, 5, 4096] {
            let r = try readAll(try FileSource(fixture("array.json"), chunk: chunk), s)
            #expect(r.rows == [[.int64(1), .json(#"["x","y"]"#), .decimal(ExactDecimal(significand: 1050, scale: 2))],
                               [.int64(2), .json("[]"), .decimal(ExactDecimal(significand: 300, scale: 2))]], "chunk \(chunk)")
            #expect(r.lines == [2, 3])
        }
    }

    @Test func prettyPrintedSequenceIsDetected() throws {
        let text = "{\n  \"id\": 1\n}\n{\n  \"id\": 2\n}\n"
        let r = try readAll(MemoryChunkReader(text, chunkSize: 3), TableSchema(columns: [ColumnSchema(name: "id", type: .int64)]))
        #expect(r.rows == [[.int64(1)], [.int64(2)]])
        #expect(r.lines == [1, 4])
    }

    @Test func unclosedArrayIsAFileError() {
        #expect(throws: SluiceError.self) {
            _ = try readAll(MemoryChunkReader("[{\"id\": 1}, {\"id\": 2}"), TableSchema(columns: [ColumnSchema(name: "id", type: .int64)]))
        }
    }

    @Test func overlongLineIsRejectedAndReadingContinues() throws {
        let big = "{\"id\": 2, \"pad\": \"" + String(repeating: "x", count: 500) + "\"}"
        let text = "{\"id\": 1}\n\(big)\n{\"id\": 3}\n"
        let r = try readAll(MemoryChunkReader(text, chunkSize: 10), TableSchema(columns: [ColumnSchema(name: "id", type: .int64)]),
                            layout: .lines, maxRecord: 100)
        #expect(r.rows == [[.int64(1)], [.int64(3)]])
        #expect(r.rejects.map(\.line) == [2])
    }

    @Test func opFieldAndLiteralDottedKeys() throws {
        let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "ab", type: .text, source: "a.b")])
        let text = "{\"id\": 1, \"a.b\": \"literal\", \"op\": \"D\"}\n{\"id\": 2, \"a\": {\"b\": \"nested\"}}\n"
        let r = JSONBatchReader(source: MemoryChunkReader(text), layout: .lines, spec: ReadSpec(schema: s, opField: "op"))
        let b = try #require(try r.next())
        #expect(b.batch.ops == [.delete, .upsert])
        #expect(b.batch.row(1) == [.int64(2), .text("nested")])
    }
}

func FileSource(_ path: String, chunk: Int) throws -> MemoryChunkReader {
    MemoryChunkReader(Array(FileManager.default.contents(atPath: path)!), chunkSize: chunk)
}

@Suite struct SamplerTests {
    @Test func infersCSVAndJSON() throws {
        let csv = "id,valor,name,day,op\n1,1.5,a,2024-01-01,U\n2,2,b,,D\n"
        let cols = try SchemaSampler.infer(source: MemoryChunkReader(csv), format: .csv, exclude: ["op"])
        #expect(cols.map(\.name) == ["id", "valor", "name", "day"])
        #expect(cols.map(\.type) == [.int64, .float64, .text, .date])
        let json = "{\"id\": 1, \"o\": {\"x\": 1}}\n{\"id\": 2, \"late\": true}\n"
        let jc = try SchemaSampler.infer(source: MemoryChunkReader(json), format: .ndjson)
        #expect(jc.map(\.name) == ["id", "o", "late"])
        #expect(jc.map(\.type) == [.int64, .json, .bool])
    }
}
