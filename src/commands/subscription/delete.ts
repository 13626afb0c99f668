import {subscriptionDelete} from '../../cli/defs/subscription.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(subscriptionDelete)
