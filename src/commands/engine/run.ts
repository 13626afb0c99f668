import {engineRun} from '../../cli/defs/engine.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(engineRun)
