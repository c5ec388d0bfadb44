import Testing
import Foundation
import SluiceCore
import SluiceFormats

/// Issue 19: Excel's Windows-1252 and Latin-1 files read as UTF-8, whatever the buffer sizes.
@Suite struct TranscodingTests {
    func transcode(_ bytes: [UInt8], _ encoding: SingleByteEncoding, chunk: Int, buffer: Int) throws -> [UInt8] {
        var r = TranscodingChunkReader(MemoryChunkReader(bytes, chunkSize: chunk), encoding: encoding)
        var out: [UInt8] = []
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer, alignment: 1)
        defer { buf.deallocate() }
        while true {
            let n = try r.read(into: buf)
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    @Test func everyByteMatchesFoundationsDecoding() throws {
        let all = (0...255).map { UInt8($0) }
        for (encoding, foundation) in [(SingleByteEncoding.windows1252, String.Encoding.windowsCP1252), (.latin1, .isoLatin1)] {
            // Foundation leaves CP1252's five unassigned bytes undecodable; they keep Latin-1's code points here.
            let expected = Array(all.map { b in String(data: Data([b]), encoding: foundation) ?? String(UnicodeScalar(b)) }.joined().utf8)
            for (chunk, buffer) in [(1, 1), (1, 2), (3, 3), (7, 5), (64, 4096), (256, 9)] {
                #expect(try transcode(all, encoding, chunk: chunk, buffer: buffer) == expected, "\(encoding) chunk \(chunk) buffer \(buffer)")
            }
        }
    }

    @Test func sniffingTellsUTF8FromSingleByteText() {
        #expect(!SingleByteEncoding.notUTF8(Array("id;nome\n1;João".utf8)))
        #expect(SingleByteEncoding.notUTF8("id;nome\n1;João\n".data(using: .windowsCP1252)!))
        // A character cut by the end of the sample is not a verdict.
        #expect(!SingleByteEncoding.notUTF8(Array("abc ã".utf8).dropLast()))
    }
}
