import Testing
import Foundation
@testable import SluiceStorage

/// The signer against the AWS SigV4 test suite (credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z,
/// us-east-1, service "service") and the worked examples of the S3 documentation.
struct SigV4Tests {
    static let suite = SigV4Signer(credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                   region: "us-east-1", service: "service")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
    static let s3 = SigV4Signer(credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                region: "us-east-1", service: "s3")
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z

    func suiteAuth(_ method: String, path: String = "/", query: [(String, String)] = [], headers: [(String, String)] = []) -> String {
        Self.suite.authorization(method: method, path: path, query: query,
                                 headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")] + headers,
                                 payloadHash: SigV4Signer.emptyPayloadHash, date: Self.suiteDate)
    }

    static let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "

    @Test func testSuiteVectors() {
        #expect(SigV4Signer.stamps(Self.suiteDate).amzDate == "20150830T123600Z")
        #expect(suiteAuth("GET") == Self.prefix + "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(suiteAuth("POST") == Self.prefix + "SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        #expect(suiteAuth("GET", query: [("Param2", "value2"), ("Param1", "value1")])
                == Self.prefix + "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        #expect(suiteAuth("POST", headers: [("My-Header1", "VALUE1")])
                == Self.prefix + "SignedHeaders=host;my-header1;x-amz-date, Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d")
        #expect(suiteAuth("GET", headers: [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")])
                == Self.prefix + "SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736")
        #expect(suiteAuth("GET", path: "/" + SigV4Signer.encode("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", keepSlash: true))
                == Self.prefix + "SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f")
    }

    @Test func canonicalRequestOfTheSuite() {
        let (creq, signed) = SigV4Signer.canonicalRequest(method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")],
                                                          headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
                                                          payloadHash: SigV4Signer.emptyPayloadHash)
        #expect(creq == "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + SigV4Signer.emptyPayloadHash)
        #expect(signed == "host;x-amz-date")
    }

    @Test func s3DocumentationExamples() {
        // GET Object, first 10 bytes.
        let get = Self.s3.authorization(method: "GET", path: "/test.txt", query: [],
                                        headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                                                  ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash), ("x-amz-date", "20130524T000000Z")],
                                        payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        #expect(get == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        // GET Bucket (list) with a query.
        let list = Self.s3.authorization(method: "GET", path: "/", query: [("max-keys", "2"), ("prefix", "J")],
                                         headers: [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash),
                                                   ("x-amz-date", "20130524T000000Z")],
                                         payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        #expect(list.hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"), "\(list)")
        // A presigned GET, valid 86400 s.
        let q = Self.s3.presignedQuery(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [], expires: 86400, date: Self.s3Date)
        #expect(q.last?.0 == "X-Amz-Signature" && q.last?.1 == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", "\(q)")
    }

    @Test func pathsAndQueriesAreEncodedOnce() {
        #expect(SigV4Signer.encode("dir/a b+c$ç.json", keepSlash: true) == "dir/a%20b%2Bc%24%C3%A7.json")
        #expect(SigV4Signer.encode("a/b", keepSlash: false) == "a%2Fb")
        #expect(SigV4Signer.canonicalQuery([("uploads", ""), ("prefix", "in/x y")]) == "prefix=in%2Fx%20y&uploads=")
    }

    @Test func credentialsFromTheEnvironmentAndFiles() throws {
        let dir = NSTemporaryDirectory() + "sluice-aws-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "[default]\naws_access_key_id = AKFILE\naws_secret_access_key = secretfile\n[other]\naws_access_key_id=AKOTHER\naws_secret_access_key=s2\n"
            .write(toFile: dir + "/credentials", atomically: true, encoding: .utf8)
        try "[profile other]\nregion = eu-west-3\n".write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let env = ["AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_CONFIG_FILE": dir + "/config"]
        #expect(S3Config.fromEnvironment(env).credentials?.accessKeyID == "AKFILE")
        let other = S3Config.fromEnvironment(env.merging(["AWS_PROFILE": "other"]) { $1 })
        #expect(other.credentials?.accessKeyID == "AKOTHER" && other.region == "eu-west-3")
        let vars = S3Config.fromEnvironment(env.merging(["AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "sa-east-1",
                                                         "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"]) { $1 })
        #expect(vars.credentials?.accessKeyID == "AKENV" && vars.region == "sa-east-1" && vars.endpoint == "http://127.0.0.1:9000")
        let store = try S3ObjectStore(bucket: "my-bucket", config: vars)
        #expect(store.host == "127.0.0.1:9000" && store.path("a b.json") == "/my-bucket/a%20b.json")  // path style on a custom endpoint
        var aws = vars
        aws.endpoint = nil
        let virtual = try S3ObjectStore(bucket: "my-bucket", config: aws)
        #expect(virtual.host == "my-bucket.s3.sa-east-1.amazonaws.com" && virtual.path("k") == "/k")
        #expect(throws: (any Error).self) { try S3ObjectStore(bucket: "Bad_Bucket", config: aws) }
    }

    /// The fast reader of S3's `Last-Modified` agrees with the HTTP-date formatter, and
    /// leaves other shapes to the formatters.
    @Test func httpDatesReadAsTheFormatterReadsThem() {
        for text in ["Wed, 21 Oct 2015 07:28:00 GMT", "Tue, 01 Dec 2026 10:36:54 GMT", "Sat, 29 Feb 2020 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"] {
            #expect(S3ObjectStore.httpDate(text) == DateFormatter.http.date(from: text), "\(text)")
            #expect(S3ObjectStore.date(text) == DateFormatter.http.date(from: text))
        }
        for other in ["2026-12-01T10:36:54.000Z", "Wed, 21 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015 7:28:00 GMT", ""] {
            #expect(S3ObjectStore.httpDate(other) == nil, "\(other)")
        }
        #expect(S3ObjectStore.date("2026-12-01T10:36:54.000Z") == Date(timeIntervalSince1970: 1_796_121_414))
    }
}
