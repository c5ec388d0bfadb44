import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceFormats
@testable import SluiceLoad
import SluiceTesting

@Suite struct ChunkPlannerTests {
    func lines(_ n: Int, from k: Int = 0) -> String {
        (k..<(k + n)).map { "\($0),value-\($0),\($0 % 7)\n" }.joined()
    }

    @Test func chunksTileTheFileAtLineEndsWithTrueLineNumbers() throws {
        let dir = TempDir()
        let header = "id,name,n\n"
        let body = lines(20_000)
        let path = dir.write("f.csv", header + body)
        let file = try InputFile.inspect(path: path, format: nil)
        let chunks = try #require(try ChunkPlanner.split(file, dialect: CSVDialect(), chunkBytes: 50_000))
        #expect(chunks.count > 4)
        let bytes = Array((header + body).utf8)
        #expect(chunks.first?.start == Int64(header.utf8.count))
        #expect(chunks.last?.end == Int64(bytes.count))
        var expectLine: Int64 = 2
        for (i, c) in chunks.enumerated() {
            #expect(c.header == ["id", "name", "n"])
            #expect(c.firstLine == expectLine)
            if i > 0 { #expect(c.start == chunks[i - 1].end) }
            #expect(bytes[Int(c.end) - 1] == 0x0A)
            let text = String(decoding: bytes[Int(c.start)..<Int(c.end)], as: UTF8.self)
            let count = Int64(text.split(separator: "\n").count)
            #expect(c.endLine - c.firstLine == count)
            // The chunk's first line is the record whose number the file gives it.
            #expect(text.hasPrefix("\(c.firstLine - 2),value-"))
            expectLine = c.endLine
        }
        #expect(expectLine == 20_002)
    }

    @Test func ndjsonSplitsWithoutHeader() throws {
        let dir = TempDir()
        let text = (0..<10_000).map { #"{"id": \#($0), "name": "n\#($0)"}"# + "\n" }.joined()
        let path = dir.write("f.ndjson", text)
        let chunks = try #require(try ChunkPlanner.split(try InputFile.inspect(path: path, format: nil), dialect: CSVDialect(), chunkBytes: 40_000))
        #expect(chunks.first?.start == 0 && chunks.first?.firstLine == 1 && chunks.allSatisfy { $0.header == nil })
        #expect(chunks.last?.endLine == 10_001)
    }

    @Test func smallGzippedJSONOrMultilineFilesAreNotSplit() throws {
        let dir = TempDir()
        let csv = try InputFile.inspect(path: dir.write("small.csv", "id,name,n\n" + lines(10)), format: nil)
        #expect(try ChunkPlanner.split(csv, dialect: CSVDialect(), chunkBytes: 1 << 20) == nil)
        let json = try InputFile.inspect(path: dir.write("f.json", "[" + (0..<5000).map { #"{"id": \#($0)}"# }.joined(separator: ",\n") + "]"), format: nil)
        #expect(try ChunkPlanner.split(json, dialect: CSVDialect(), chunkBytes: 1000) == nil)
        // A quoted newline in the sampled head: lines are not records.
        let multi = try InputFile.inspect(path: dir.write("m.csv", "id,name,n\n1,\"two\nlines\",3\n" + lines(20_000, from: 2)), format: nil)
        #expect(try ChunkPlanner.split(multi, dialect: CSVDialect(), chunkBytes: 50_000) == nil)
    }
}

/// One file parsed by several threads in chunks (`--parse-threads`) gives what one reader
/// gives: the same rows in the same order with their lines, the same rejects; a failure
/// part-way comes after rows of the file before it only; a stop ends every thread.
@Suite struct ChunkedReadAheadTests {
    static let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "v", type: .int64)], primaryKey: ["id"])

    func drain(_ file: InputFile, _ spec: ReadSpec, threads: Int) async throws -> (rows: [String], rejects: [Int64], error: Int64?) {
        let (ahead, _) = try ReadAhead.of(file, spec: spec, dialect: CSVDialect(), parseThreads: threads, chunkBytes: 8 << 10)
        var rows: [String] = [], rejects: [Int64] = []
        while let item = await ahead.queue.next() {
            switch item {
            case .success(let d):
                for r in 0..<d.batch.count {
                    rows.append("\(d.batch.lines[r]):\(ValueText.render(d.batch.columns[0], r) ?? "")/\(ValueText.render(d.batch.columns[1], r) ?? "")")
                }
                rejects += d.rejects.map(\.line)
            case .failure(let e):
                await ahead.stop()
                return (rows, rejects, e.location?.line ?? -1)
            }
        }
        await ahead.stop()
        return (rows, rejects, nil)
    }

    @Test func chunksParsedAtOnceComeInTheFilesOrder() async throws {
        let dir = TempDir()
        var text = "id,v\n"
        for i in 0..<20_000 { text += i % 997 == 5 ? "\(i),oops\n" : "\(i % 5_000),\(i)\n" }
        let file = try InputFile.inspect(path: dir.write("in.csv", text), format: nil)
        let spec = ReadSpec(schema: Self.schema, limits: ReadLimits(batchRows: 700), fileName: file.path)
        #expect(try ChunkPlanner.split(file, dialect: CSVDialect(), chunkBytes: 8 << 10)?.count ?? 0 > 10)
        let one = try await drain(file, spec, threads: 1)
        for threads in [2, 3] {
            let many = try await drain(file, spec, threads: threads)
            #expect(many.rows == one.rows && many.rejects == one.rejects && many.error == nil)
        }
        #expect(one.rows.count == 20_000 - 21 && one.rejects.count == 21 && one.rows.last == "20001:4999/19999")
    }

    /// Chunk k's reader: three batches of ten rows on lines 1000k + i; chunk `failing` fails
    /// at its second batch.
    final class ChunkRows: BatchReader {
        let k: Int, failing: Int
        var made = 0
        init(_ k: Int, failing: Int) { (self.k, self.failing) = (k, failing) }
        var sourceFields: [String] { ["id", "v"] }
        var unusedFields: [String] { [] }
        var bytesConsumed: Int64 { 0 }
        var rejectFields: [String] { sourceFields }
        func sourceRecord(columnValues: [String?]) -> [String?] { columnValues }
        func next() throws(SluiceError) -> DecodedBatch? {
            guard made < 3 else { return nil }
            if k == failing && made == 1 { throw SluiceError(.malformedFile, "chunk \(k) is broken") }
            var b = BatchBuilder(schema: ChunkedReadAheadTests.schema, capacity: 10)
            for i in 0..<10 {
                b.beginRow(line: Int64(1000 * k + 10 * made + i), op: .upsert)
                b.setText(0, "\(i)")
                b.setText(1, "\(k)")
                _ = b.endRow()
            }
            made += 1
            return DecodedBatch(batch: b.take(), rejects: [])
        }
    }

    @Test func aFailurePartWayComesAfterTheChunksBeforeIt() async throws {
        var chunks: [FileChunk] = []
        for k: Int64 in 0..<8 { chunks.append(FileChunk(start: k, end: k + 1, firstLine: 1000 * k, endLine: 1000 * k + 30, header: nil)) }
        let ahead = ReadAhead(chunks: chunks, threads: 3) { (chunk) throws(SluiceError) -> any BatchReader in ChunkRows(Int(chunk.start), failing: 3) }
        var lines: [Int64] = []
        var failure: SluiceError? = nil
        while let item = await ahead.queue.next() {
            switch item {
            case .success(let d): lines += d.batch.lines
            case .failure(let e): failure = e
            }
        }
        await ahead.stop()
        #expect(failure?.message == "chunk 3 is broken")
        var expected: [Int64] = []
        for k in 0..<3 { for i in 0..<30 { expected.append(Int64(1000 * k + i)) } }
        for i in 0..<10 { expected.append(Int64(3000 + i)) }
        #expect(lines == expected)
    }

    @Test func aStopEndsEveryParsingThread() async throws {
        let dir = TempDir()
        let text = "id,v\n" + (0..<50_000).map { "\($0),\($0)\n" }.joined()
        let file = try InputFile.inspect(path: dir.write("in.csv", text), format: nil)
        let spec = ReadSpec(schema: Self.schema, limits: ReadLimits(batchRows: 500), fileName: file.path)
        let progress = LoadProgress()
        let (ahead, _) = try ReadAhead.of(file, spec: spec, dialect: CSVDialect(), parseThreads: 3, progress: progress, chunkBytes: 8 << 10)
        _ = await ahead.queue.next()
        _ = await ahead.queue.next()
        await ahead.stop()  // returns once the forwarder and the parsing threads are done
        // Done means reading no more: the bytes read stay put, and fall well short of the file.
        let stopped = progress.bytes
        try await Task.sleep(for: .milliseconds(100))
        #expect(progress.bytes == stopped && stopped < Int64(text.utf8.count) / 2, "\(stopped) of \(text.utf8.count)")
    }
}
