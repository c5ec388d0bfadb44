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
