import definition from '../cli/defs/publish.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)
