import Testing
import SluiceCore
import SluiceConfig

/// `${VAR}` in sluice.yml (issue 18): one file for every deployment.
@Suite struct EnvInterpolationTests {
    @Test func variablesDefaultsEscapesAndComments() throws {
        let yml = """
            database: ${DB_URL}
            state_dir: ${STATE:-/var/lib/sluice}   # ${NOT_SET} in a comment is left alone
            server:
              port: ${PORT:-8080}
              tokens: ["a$$b"]
            retention: {uploads_days: ${KEEP:-7}}
            """
        let c = try ConfigReader.parse(yml, environment: ["DB_URL": "postgres://u@h/db", "PORT": "9090", "KEEP": ""])
        #expect(c.database == "postgres://u@h/db" && c.stateDir == "/var/lib/sluice" && c.server.port == 9090)
        #expect(c.server.tokens == ["a$b"] && c.retention.uploadsDays == 7, "an empty variable takes the default")
        #expect(throws: SluiceError.self) { try ConfigReader.parse("database: ${DB_URL}\n", environment: [:]) }
        let unset = #expect(throws: SluiceError.self) { try ConfigReader.parse("server:\n  port: ${PORT}\n", environment: [:]) }
        #expect(unset?.description.contains("sluice.yml:2") == true && unset?.description.contains("PORT is not set") == true, "\(String(describing: unset))")
    }
}
